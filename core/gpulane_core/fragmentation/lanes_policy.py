"""fgd-balance, gpulane's cluster placement: FGD's fragmentation gradient in lane terms, plus CPU-GPU balance.

gpulane shares a GPU through Salus memory lanes: a sharing pod opens a lane of its share on a GPU
whose unallocated share can hold it; a whole-GPU pod takes an exclusive lane. A GPU's remainder is
therefore useful to a typical pod exactly when it can still open that pod's lane — FGD's per-GPU
fragment rule — and what *fits* is unchanged, so the allocation metric stays comparable. The trace
does not split a pod's share into persistent and ephemeral memory, so lane *sharing* (pods taking
turns in one lane) is not credited: every sharing pod opens its own lane.

The lane view also says when a GPU cannot open any lane although it has share left: its node has no
CPU left for the pod that would use it. FGD sees that only as a cliff (a typical pod's CPU demand no
longer fits); gpulane adds the gradient. With rho the workload's CPU per milli-GPU (typical GPU
pods, popularity-weighted), a node *strands* max(0, L - cpu_left / rho) milli-GPU: share its CPU
cannot feed at the workload's mix. The score is

    floor(100 x sigmoid((delta_frag + balance x delta_stranded) / 1000))

with both deltas "before minus after" (positive = the placement helps). Like FGD it is floored to
an integer, and ties go to node order, which the experiment randomises: finer ranking was measured
to place *less* (docs/placement.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gpulane_core.fragmentation.fgd import best_fgd_score
from gpulane_core.fragmentation.frag import FragModel
from gpulane_core.fragmentation.policy import EMPTY_CYCLE, CycleState, NodeScore, identity_normalize
from gpulane_core.fragmentation.types import NodeState, PodShape, TypicalPod


def cpu_per_gpu_milli(typical: Sequence[TypicalPod]) -> float:
    """The workload's CPU (milli) per milli-GPU over typical GPU pods; 0 when there are none."""
    gpu = sum(t.popularity * t.shape.total_gpu_milli for t in typical)
    cpu = sum(t.popularity * t.shape.cpu_milli for t in typical if t.shape.total_gpu_milli > 0)
    return cpu / gpu if gpu > 0 else 0.0


def stranded_milli(gpu_milli_left: int, cpu_milli_left: int, rho: float) -> float:
    """Free GPU share the node's free CPU cannot feed at ``rho`` CPU per milli-GPU."""
    if rho <= 0:
        return 0.0
    return max(0.0, gpu_milli_left - cpu_milli_left / rho)


@dataclass(frozen=True, slots=True)
class FgdBalancePolicy:
    model: FragModel
    balance: float = 1.0
    name: str = "fgd-balance"
    cacheable: bool = True
    rho: float = field(init=False)

    def __post_init__(self) -> None:
        if self.balance < 0:
            raise ValueError(f"balance: must not be negative, got {self.balance}")
        object.__setattr__(self, "rho", cpu_per_gpu_milli(self.model.typical))

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        return EMPTY_CYCLE

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        cpu_after = node.cpu_milli_left - pod.cpu_milli
        stranded_before = stranded_milli(node.gpu_milli_left_total, node.cpu_milli_left, self.rho)
        stranded_after = stranded_milli(node.gpu_milli_left_total - pod.total_gpu_milli, cpu_after, self.rho)
        # the same for every GPU choice on this node: the node total and its CPU change alike
        return best_fgd_score(self.model, node, pod, self.balance * (stranded_before - stranded_after))

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return identity_normalize(scores)
