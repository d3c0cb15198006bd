"""FGD, Fragmentation Gradient Descent: place each pod where it grows fragmentation least.

Score = floor(100 x sigmoid(delta / 1000)) with delta = F_n(before) - F_n(after). A sharing pod
tries every GPU it fits on and keeps the best (first index on ties); whole-GPU pods take the
lowest-index free GPUs. F_n comes from a shared :class:`FragModel` (memoised).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.fragmentation.frag import FragModel
from gpulane_core.fragmentation.policy import (
    EMPTY_CYCLE,
    CycleState,
    NodeScore,
    exclusive_gpus,
    identity_normalize,
)
from gpulane_core.fragmentation.types import MILLI, NodeState, PodShape
from gpulane_core.framework import MAX_SCORE


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # the same value, without overflow for very negative x
    return e / (1.0 + e)


def fgd_score(delta_milli: float) -> int:
    """floor(100 x sigmoid(delta / 1000)): 50 for no change, higher when fragmentation shrinks."""
    return int(sigmoid(delta_milli / 1000.0) * MAX_SCORE)


def after_states(node: NodeState, pod: PodShape) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(GPU indices, free shares after) for each way FGD considers placing ``pod`` on ``node``."""
    lefts = node.gpu_milli_left
    if pod.num_gpu == 0 or pod.gpu_milli == 0:
        return [((), lefts)]
    if pod.gpu_milli < MILLI and pod.num_gpu == 1:
        options: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        for i, left in enumerate(lefts):
            if left >= pod.gpu_milli:
                options.append(((i,), (*lefts[:i], left - pod.gpu_milli, *lefts[i + 1 :])))
        return options
    gpus = exclusive_gpus(node, pod)
    if not gpus:
        return []
    after = list(lefts)
    for i in gpus:
        after[i] -= pod.gpu_milli
    return [(gpus, tuple(after))]


def best_fgd_score(model: FragModel, node: NodeState, pod: PodShape, gain: float = 0.0) -> NodeScore:
    """The best :func:`fgd_score` over :func:`after_states` (first GPU choice on ties).

    ``gain`` is added to every fragmentation delta (the same for each GPU choice on the node).
    """
    before = model.node(node)
    cpu_after = node.cpu_milli_left - pod.cpu_milli
    best: NodeScore | None = None
    tried: dict[int, int] = {}  # free share of the GPU tried -> score (same share, same score)
    for gpus, after in after_states(node, pod):
        key = node.gpu_milli_left[gpus[0]] if len(gpus) == 1 else -1
        score = tried.get(key)
        if score is None:
            score = fgd_score(before - model.frag(node.model, cpu_after, after) + gain)
            tried[key] = score
        if best is None or score > best.score:
            best = NodeScore(score, gpus)
    return best if best is not None else NodeScore(0, ())


@dataclass(frozen=True, slots=True)
class FgdPolicy:
    model: FragModel
    name: str = "fgd"
    cacheable: bool = True

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        return best_fgd_score(self.model, node, pod)

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)
