"""gpulane's own cluster placement: FGD's fragmentation gradient, read in lane terms, with finer ranking.

gpulane shares a GPU through Salus memory lanes: a sharing pod opens a lane of its share on a GPU
whose unallocated share can hold it, and a whole-GPU pod takes an exclusive lane. So a GPU's
remainder is useful to a typical pod exactly when it can still open that pod's lane — FGD's
per-GPU fragment rule — and what *fits* is unchanged (the allocation metric stays comparable).
The trace does not split a pod's share into persistent and ephemeral memory, so lane *sharing*
(several pods taking turns in one lane) is not credited here: every sharing pod opens its own lane.

What differs from FGD is the ranking:

1. the fragmentation change is used at full resolution — FGD floors 100 x sigmoid(delta/1000) to
   an integer, which makes every delta within about 40 milli-GPU a tie settled by node order;
2. among equal gradients, prefer placing a sharing pod into a GPU that already holds lanes (lane
   consolidation keeps whole GPUs whole), then the tightest fit, then the fuller node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.fragmentation.fgd import after_states, fgd_score
from gpulane_core.fragmentation.frag import FragModel
from gpulane_core.fragmentation.policy import EMPTY_CYCLE, CycleState, NodeScore, identity_normalize
from gpulane_core.fragmentation.types import MILLI, NodeState, PodShape


@dataclass(frozen=True, slots=True)
class GpulanePolicy:
    model: FragModel
    name: str = "gpulane"
    cacheable: bool = True

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        before = self.model.node(node)
        cpu_after = node.cpu_milli_left - pod.cpu_milli
        best: NodeScore | None = None
        node_free_after = node.gpu_milli_left_total - pod.total_gpu_milli
        for gpus, after in after_states(node, pod):
            delta = before - self.model.frag(node.model, cpu_after, after)
            if len(gpus) == 1 and pod.is_sharing:
                left = node.gpu_milli_left[gpus[0]]
                opened = 1.0 if left < MILLI else 0.0  # the GPU already holds lanes
                fit = (MILLI - (left - pod.gpu_milli)) / MILLI  # 1 when the lane fills the GPU
            else:
                opened, fit = 0.0, 0.0
            # delta dominates; lane consolidation, tightness and node fullness only break ties
            rank = delta + 1e-3 * opened + 1e-6 * fit - 1e-9 * node_free_after
            if best is None or rank > best.rank:
                best = NodeScore(fgd_score(delta), gpus, rank)
        return best if best is not None else NodeScore(0, ())

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)
