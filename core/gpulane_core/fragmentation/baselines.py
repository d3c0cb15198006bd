"""The five baseline placement policies of the FGD paper, as score plugins over milli-GPU states.

Each follows the simulator's plugin (hkust-adsl/kubernetes-scheduler-simulator ``pkg/simulator/
plugin/``): the node score with its integer arithmetic, and the GPU choice the experiment
configured (Random picks a random fitting GPU, the others best-fit). Paraphrased from the
definitions in docs/placement.md; no code is copied.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from gpulane_core.fragmentation.policy import (
    EMPTY_CYCLE,
    CycleState,
    NodeScore,
    best_fit_gpus,
    exclusive_gpus,
    identity_normalize,
    minmax_normalize,
)
from gpulane_core.fragmentation.types import MILLI, NodeState, PodShape
from gpulane_core.framework import MAX_SCORE, MIN_SCORE

MAX_SPEC_CPU = 128_000  # milli-CPU of the largest node: the simulator's normaliser
MAX_SPEC_GPU = 8_000  # milli-GPU of the largest node
_NOT_CHOSEN = NodeScore(MIN_SCORE, ())  # frozen: one shared value for every node Random did not pick


@dataclass(slots=True)
class RandomPolicy:
    """PreScore picks one feasible node uniformly (100, others 0); GPU uniform among those that fit.

    Not cacheable: it draws from its seeded RNG, in the order the simulator does (node, then GPU).
    """

    rng: random.Random = field(default_factory=lambda: random.Random(0))
    name: str = "random"
    cacheable: bool = False

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return CycleState(chosen=feasible[self.rng.randrange(len(feasible))].name)

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        if node.name != cycle.chosen:
            return _NOT_CHOSEN
        return NodeScore(MAX_SCORE, self._random_gpus(node, pod))

    def _random_gpus(self, node: NodeState, pod: PodShape) -> tuple[int, ...]:
        if pod.num_gpu == 0 or pod.gpu_milli == 0:
            return ()
        if pod.gpu_milli >= MILLI:
            return exclusive_gpus(node, pod)
        chosen, seen = -1, 0
        for i, left in enumerate(node.gpu_milli_left):
            if left >= pod.gpu_milli:
                seen += 1
                if self.rng.randrange(seen) == 0:  # reservoir sampling: uniform over fitting GPUs
                    chosen = i
        return (chosen,) if chosen >= 0 else ()

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)


@dataclass(frozen=True, slots=True)
class DotProductPolicy:
    """Tetris-style: 100 x (1 - <free, request>/2), both (CPU, total GPU) vectors / (128000, 8000)."""

    name: str = "dotprod"
    cacheable: bool = True

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        dot = (node.cpu_milli_left / MAX_SPEC_CPU) * (pod.cpu_milli / MAX_SPEC_CPU) + (
            node.gpu_milli_left_total / MAX_SPEC_GPU
        ) * (pod.total_gpu_milli / MAX_SPEC_GPU)
        return NodeScore(int(MAX_SCORE * (1.0 - dot / 2)), best_fit_gpus(node, pod))

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)


@dataclass(frozen=True, slots=True)
class GpuPackingPolicy:
    """Prefer partly used GPUs, then free GPUs on used nodes, then idle nodes (fewest GPUs first)."""

    name: str = "gpupacking"
    cacheable: bool = True

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        gpus = best_fit_gpus(node, pod)
        if pod.gpu_milli == 0 or pod.num_gpu == 0:
            return NodeScore(MIN_SCORE, gpus)
        free = node.fully_free_gpus
        if free == node.gpu_count:  # idle node
            return NodeScore(max(MAX_SCORE // 3 - free, free), gpus)
        order = sorted(range(node.gpu_count), key=lambda i: node.gpu_milli_left[i])  # stable: least free first
        to_use: list[int] = []
        for i in order:
            if len(to_use) == pod.num_gpu:
                break
            if node.gpu_milli_left[i] >= pod.gpu_milli:
                to_use.append(i)
        if len(to_use) < pod.num_gpu:
            return NodeScore(MIN_SCORE, gpus)
        fresh = sum(1 for i in to_use if node.gpu_milli_left[i] == MILLI)
        if fresh:  # needs fully free GPUs on a used node
            return NodeScore(max(MAX_SCORE // 2 - fresh, MAX_SCORE // 3), gpus)
        free_pct = sum(node.gpu_milli_left[i] * 100 // MILLI for i in to_use)
        return NodeScore(max(MAX_SCORE - free_pct // 10, MAX_SCORE // 2), gpus)

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)


@dataclass(frozen=True, slots=True)
class GpuClusteringPolicy:
    """Keep pods of one class (share-gpu, k-gpu) together; within a band prefer fuller nodes."""

    name: str = "gpuclustering"
    cacheable: bool = True

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        gpus = best_fit_gpus(node, pod)
        tag = pod.affinity
        if not tag:
            return NodeScore(MIN_SCORE, gpus)
        fullness = MAX_SCORE // 4 * (MAX_SPEC_GPU - node.gpu_milli_left_total) // MAX_SPEC_GPU
        hosted = dict(node.affinities)
        # bands: only this class (3), this class among others (2), no class yet (1), only others (0)
        band = (3 if len(hosted) == 1 else 2) if hosted.get(tag, 0) > 0 else int(not hosted)
        return NodeScore(fullness + MAX_SCORE * band // 4, gpus)

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)


@dataclass(frozen=True, slots=True)
class BestFitPolicy:
    """Least leftover (CPU and total GPU, half weight each, / max spec) wins; min-max normalised."""

    name: str = "bestfit"
    cacheable: bool = True

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        leftover = 0.5 * (node.cpu_milli_left - pod.cpu_milli) / MAX_SPEC_CPU + 0.5 * (
            node.gpu_milli_left_total - pod.total_gpu_milli
        ) / MAX_SPEC_GPU
        return NodeScore(int((1.0 - leftover) * MAX_SCORE), best_fit_gpus(node, pod))

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return minmax_normalize(scores)
