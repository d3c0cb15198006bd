"""GPU fragmentation as defined by FGD (Weng et al., ATC'23): the free GPU share a workload cannot use.

A node's free milli-GPU is a *fragment* with respect to a typical pod when that pod cannot use it:
the pod needs no GPU, may not run on this GPU model, or does not fit (GPU or CPU) — then all free
GPU share counts — or, when the pod fits, the GPUs individually too small for it. The node's
fragmentation is the popularity-weighted sum over typical pods. ``FragModel`` computes the same
number fast, memoised on the parts of a node state that can change it.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence

from gpulane_core.fragmentation.types import NodeState, PodShape, TypicalPod


class FragClass(enum.Enum):
    """Where a (node, typical pod) pair falls (the paper's quadrants plus the GPU-less cases)."""

    Q1_LACK_BOTH = "q1_lack_both"
    Q2_LACK_GPU = "q2_lack_gpu"
    Q3_SATISFIED = "q3_satisfied"
    Q4_LACK_CPU = "q4_lack_cpu"
    XL_SATISFIED = "xl_satisfied"  # CPU-only pod, CPU enough: still no use for the GPUs
    XR_LACK_CPU = "xr_lack_cpu"
    NO_ACCESS = "no_access"  # the pod may not run on this GPU model


def gpus_fit(gpu_milli_left: Sequence[int], pod: PodShape) -> bool:
    """At least ``num_gpu`` GPUs each have ``gpu_milli`` free."""
    return sum(1 for left in gpu_milli_left if left >= pod.gpu_milli) >= pod.num_gpu


def classify(node: NodeState, pod: PodShape) -> FragClass:
    cpu_ok = node.cpu_milli_left >= pod.cpu_milli
    if pod.gpu_milli == 0:
        return FragClass.XL_SATISFIED if cpu_ok else FragClass.XR_LACK_CPU
    if not pod.accepts(node.model):
        return FragClass.NO_ACCESS
    if gpus_fit(node.gpu_milli_left, pod):
        return FragClass.Q3_SATISFIED if cpu_ok else FragClass.Q4_LACK_CPU
    return FragClass.Q2_LACK_GPU if cpu_ok else FragClass.Q1_LACK_BOTH


def node_pod_frag(node: NodeState, pod: PodShape) -> int:
    """F_n(m) in milli-GPU: all free GPU share unless m fits, then the GPUs too small for m."""
    if classify(node, pod) is FragClass.Q3_SATISFIED:
        return sum(left for left in node.gpu_milli_left if left < pod.gpu_milli)
    return node.gpu_milli_left_total


def node_frag(node: NodeState, typical: Sequence[TypicalPod]) -> float:
    """F_n = sum over typical pods of popularity x F_n(m)."""
    return sum(t.popularity * node_pod_frag(node, t.shape) for t in typical)


def cluster_frag(nodes: Iterable[NodeState], typical: Sequence[TypicalPod]) -> float:
    return sum(node_frag(n, typical) for n in nodes)


def frag_ratio(nodes: Sequence[NodeState], typical: Sequence[TypicalPod]) -> float:
    """Cluster fragmentation over total free GPU share (0 when nothing is free)."""
    free = sum(n.gpu_milli_left_total for n in nodes)
    return cluster_frag(nodes, typical) / free if free else 0.0


def _popularity_order(item: tuple[PodShape, int]) -> tuple[int, int, int, int, tuple[str, ...]]:
    shape, count = item
    return (count, shape.cpu_milli, shape.gpu_milli, shape.num_gpu, shape.gpu_types)


def typical_pods(
    pods: Iterable[PodShape], threshold: float = 0.95, step: int = 1, include_cpu_pods: bool = True
) -> tuple[TypicalPod, ...]:
    """The most popular pod shapes covering at least ``threshold`` of the pods, renormalised.

    Shapes are grouped by (CPU, GPU milli, GPU count, GPU models); most popular first, ties by the
    larger shape (the simulator's order). ``step`` shapes are added at a time (the experiments use 1).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold: must be in (0, 1], got {threshold}")
    if step < 1:
        raise ValueError(f"step: must be at least 1, got {step}")
    counts = Counter(p.without_memory() for p in pods if include_cpu_pods or p.num_gpu > 0)
    total = sum(counts.values())
    if total == 0:
        return ()
    ranked = sorted(counts.items(), key=_popularity_order, reverse=True)
    expected = threshold * total
    kept: list[tuple[PodShape, int]] = []
    covered = 0
    while covered < expected and len(kept) < len(ranked):
        for shape, count in ranked[len(kept) : len(kept) + step]:
            kept.append((shape, count))
            covered += count
    return tuple(TypicalPod(shape, count / covered) for shape, count in kept)


class FragModel:
    """F_n for one set of typical pods, memoised by what F_n depends on.

    F_n depends on the GPU model, the multiset of free GPU shares and CPU only through which
    typical-pod CPU demands it meets, so the memo key uses that CPU *class*: many nodes share it.
    The memo lives on the instance (one per experiment), never at module level.
    """

    __slots__ = ("_cache", "_cpu_thresholds", "typical")

    def __init__(self, typical: Sequence[TypicalPod]) -> None:
        self.typical = tuple(typical)
        self._cpu_thresholds = sorted({t.shape.cpu_milli for t in self.typical})
        self._cache: dict[tuple[str, int, tuple[int, ...]], float] = {}

    def cpu_class(self, cpu_milli_left: int) -> int:
        return bisect_right(self._cpu_thresholds, cpu_milli_left)

    def frag(self, model: str, cpu_milli_left: int, gpu_milli_left: Sequence[int]) -> float:
        lefts = tuple(sorted(gpu_milli_left, reverse=True))
        key = (model, self.cpu_class(cpu_milli_left), lefts)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        total = sum(lefts)
        value = 0.0
        for t in self.typical:
            pod = t.shape
            if (
                pod.gpu_milli == 0
                or cpu_milli_left < pod.cpu_milli
                or (pod.gpu_types and model not in pod.gpu_types)
            ):
                value += t.popularity * total
                continue
            fitting = 0
            small = 0
            for left in lefts:
                if left >= pod.gpu_milli:
                    fitting += 1
                else:
                    small += left
            value += t.popularity * (small if fitting >= pod.num_gpu else total)
        self._cache[key] = value
        return value

    def node(self, node: NodeState) -> float:
        return self.frag(node.model, node.cpu_milli_left, node.gpu_milli_left)
