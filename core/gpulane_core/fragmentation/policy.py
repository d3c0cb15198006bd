"""The milli-GPU view of placement: the filter, node scorers over milli-GPU states, one cycle.

The FGD family is written in the FGD simulator's terms: a :class:`NodeScorer` rates each feasible
node 0..100 and names the GPUs it would use; ``normalize`` maps one pod's raw scores; the node with
the highest score wins, ties going to the node that comes first in the given order (the FGD
simulator's patched ``selectHost`` takes the lexicographically smallest name). This is not a second
plugin framework: each scorer is registered, under one name, in :mod:`gpulane_core.registry`, whose
entries are :mod:`gpulane_core.framework` profiles; :mod:`gpulane_core.fragmentation.bridge` runs a
scorer as a framework score plugin (the operator, ``simulate``) and a profile as a scorer (``place``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gpulane_core.fragmentation.types import MILLI, NodeState, PodShape
from gpulane_core.framework import MAX_SCORE, MIN_SCORE
from gpulane_core.status import Status

FILTER_NAME = "OpenGpuShareFit"


@dataclass(frozen=True, slots=True)
class NodeScore:
    """A node's score for one pod and the GPU indices the pod would get there.

    ``rank`` orders nodes whose (normalised) scores are equal, before node order does; the
    published baselines leave it 0, so for them ties go straight to node order.
    """

    score: int
    gpus: tuple[int, ...]
    rank: float = 0.0


@dataclass(frozen=True, slots=True)
class CycleState:
    """What a PreScore step decided for this pod (Random's chosen node, a profile's node and GPUs)."""

    chosen: str = ""
    gpus: tuple[int, ...] = ()


EMPTY_CYCLE = CycleState()


class NodeScorer(Protocol):
    """A placement policy in the milli view: one score per feasible node (each experiment runs one)."""

    @property
    def name(self) -> str: ...

    @property
    def cacheable(self) -> bool:
        """True when ``score`` depends only on (node state, pod shape): callers may memoise it."""
        ...

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState: ...

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore: ...

    def normalize(self, scores: Sequence[int]) -> list[int]: ...


def fits(node: NodeState, pod: PodShape) -> bool:
    """Open-Gpu-Share's filter plus the default resource fit (CPU and host memory)."""
    if pod.cpu_milli > node.cpu_milli_left or pod.memory_mib > node.memory_mib_left:
        return False
    if pod.gpu_milli == 0 or pod.num_gpu == 0:
        return True
    if not pod.accepts(node.model):
        return False
    fitting = 0
    for left in node.gpu_milli_left:
        if left >= pod.gpu_milli:
            fitting += 1
    return fitting >= pod.num_gpu


def filter_node(node: NodeState, pod: PodShape) -> Status:
    """The same verdict as :func:`fits`, with the reason when it fails."""
    if pod.cpu_milli > node.cpu_milli_left:
        return Status.unschedulable(f"{node.name}: cpu {node.cpu_milli_left}m left < {pod.cpu_milli}m", FILTER_NAME)
    if pod.memory_mib > node.memory_mib_left:
        return Status.unschedulable(
            f"{node.name}: memory {node.memory_mib_left}Mi left < {pod.memory_mib}Mi", FILTER_NAME
        )
    if pod.gpu_milli and pod.num_gpu:
        if not pod.accepts(node.model):
            return Status.unschedulable(
                f"{node.name}: GPU model {node.model} not in {'|'.join(pod.gpu_types)}", FILTER_NAME, resolvable=False
            )
        if not fits(node, pod):
            return Status.unschedulable(
                f"{node.name}: fewer than {pod.num_gpu} GPUs with {pod.gpu_milli} milli free", FILTER_NAME
            )
    return Status.success(FILTER_NAME)


def exclusive_gpus(node: NodeState, pod: PodShape) -> tuple[int, ...]:
    """Whole-GPU pods take the lowest-index fully free GPUs."""
    chosen = [i for i, left in enumerate(node.gpu_milli_left) if left == MILLI][: pod.num_gpu]
    return tuple(chosen) if len(chosen) == pod.num_gpu else ()


def best_fit_gpus(node: NodeState, pod: PodShape) -> tuple[int, ...]:
    """Sharing pods take the fitting GPU with the least free share (first index on ties)."""
    if pod.num_gpu == 0 or pod.gpu_milli == 0:
        return ()
    if pod.gpu_milli >= MILLI:
        return exclusive_gpus(node, pod)
    best = -1
    for i, left in enumerate(node.gpu_milli_left):
        if left >= pod.gpu_milli and (best < 0 or left < node.gpu_milli_left[best]):
            best = i
    return (best,) if best >= 0 else ()


def identity_normalize(scores: Sequence[int]) -> list[int]:
    return list(scores)


def minmax_normalize(scores: Sequence[int]) -> list[int]:
    """Integer min-max onto 0..100 (all equal -> all 0), as the FGD simulator's NormalizeScore."""
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    span = hi - lo
    if span == 0:
        return [MIN_SCORE] * len(scores)
    return [(s - lo) * (MAX_SCORE - MIN_SCORE) // span + MIN_SCORE for s in scores]


@dataclass(frozen=True, slots=True)
class Decision:
    node: str
    gpus: tuple[int, ...]
    score: int


def schedule(nodes: Sequence[NodeState], pod: PodShape, plugin: NodeScorer) -> Decision | None:
    """One scheduling cycle: filter, pre-score, score, normalize, highest score (first in order) wins."""
    feasible = [n for n in nodes if fits(n, pod)]
    if not feasible:
        return None
    cycle = plugin.pre_score(pod, feasible)
    scored = [plugin.score(n, pod, cycle) for n in feasible]
    totals = plugin.normalize([s.score for s in scored])
    best = max(range(len(feasible)), key=lambda i: (totals[i], scored[i].rank, -i))
    return Decision(feasible[best].name, scored[best].gpus, totals[best])
