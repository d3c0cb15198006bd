"""Job-independent extremes of a node's GPUs: fit checks and score bounds without listing options.

The scheduler keeps one :class:`NodeFacts` per node for a cycle and re-measures a node when a
reservation changes it. Fit checks read ``max_free_mib``, ``max_headroom_mib`` and ``empty``; a
bounded score plugin (:class:`gpulane_core.framework.BoundedScorePlugin`) reads :class:`BoundFacts` to
cap the score of every option a job could have on the node, so the search can skip nodes that cannot
beat the best option found so far. :meth:`BoundFacts.merge` builds the facts of a virtual node at
least as favourable to every bound as each merged one, which bounds a whole group of nodes at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.cluster import NodeView


@dataclass(frozen=True, slots=True)
class GpuClass:
    """Extremes over a set of healthy, shareable GPUs (a node's used ones, or its empty ones)."""

    committed_min: int
    persistent_min: int
    lanes_max: int  # the largest sum of lane sizes on one of them
    capacity_min: int
    capacity_max: int

    def merge(self, other: GpuClass | None) -> GpuClass:
        if other is None:
            return self
        return GpuClass(
            min(self.committed_min, other.committed_min),
            min(self.persistent_min, other.persistent_min),
            max(self.lanes_max, other.lanes_max),
            min(self.capacity_min, other.capacity_min),
            max(self.capacity_max, other.capacity_max),
        )


@dataclass(frozen=True, slots=True)
class BoundFacts:
    """What score bounds may read: node totals (as ``occupancy.node_summary`` counts them) and classes."""

    capacity_mib: int  # every GPU, healthy or not
    committed_mib: int
    used: GpuClass | None  # healthy GPUs with tenants, not held whole
    idle: GpuClass | None  # healthy GPUs without tenants

    def merge(self, other: BoundFacts) -> BoundFacts:
        """Most capacity, least committed, the widest classes: no bound is lower than for either."""
        return BoundFacts(
            max(self.capacity_mib, other.capacity_mib),
            min(self.committed_mib, other.committed_mib),
            _merge(self.used, other.used),
            _merge(self.idle, other.idle),
        )


def _merge(a: GpuClass | None, b: GpuClass | None) -> GpuClass | None:
    return b if a is None else a.merge(b)


def merge_all(facts: Sequence[BoundFacts]) -> BoundFacts:
    """``facts[0].merge(facts[1]).merge(...)`` in one pass: the same extremes (min and max of ints
    are exact in any grouping) without one intermediate object per node; ``facts`` is not empty."""
    used = [f.used for f in facts if f.used is not None]
    idle = [f.idle for f in facts if f.idle is not None]
    return BoundFacts(
        max(f.capacity_mib for f in facts),
        min(f.committed_mib for f in facts),
        _class_of(used),
        _class_of(idle),
    )


def _class_of(classes: list[GpuClass]) -> GpuClass | None:
    if not classes:
        return None
    if len(classes) == 1:
        return classes[0]
    return GpuClass(
        min(c.committed_min for c in classes),
        min(c.persistent_min for c in classes),
        max(c.lanes_max for c in classes),
        min(c.capacity_min for c in classes),
        max(c.capacity_max for c in classes),
    )


@dataclass(frozen=True, slots=True)
class NodeFacts:
    occupied: int  # GPUs holding a tenant (healthy or not)
    empty: int  # healthy GPUs without a tenant
    max_free_mib: int  # largest free memory on a healthy GPU not held whole; -1 when none
    # Largest free + lanes' biggest size there: a 1-GPU job of P + E fits some GPU only if
    # P <= free and P + E <= free + biggest lane (Salus' new, share and grow cases together).
    max_headroom_mib: int
    bounds: BoundFacts


def measure(view: NodeView) -> NodeFacts:
    """The view's facts; computed once per view (views are immutable) and kept on it."""
    kept = view.derived.get("facts")
    if isinstance(kept, NodeFacts):
        return kept
    facts = view.derived["facts"] = _measure(view)
    return facts


def _measure(view: NodeView) -> NodeFacts:
    capacity = committed = occupied = 0
    max_free = max_headroom = -1
    # Each class's running extremes (used: GPUs with tenants; idle: without) as one small list
    # [count, committed_min, persistent_min, lanes_max, capacity_min, capacity_max], one GpuClass at
    # the end: min and max of ints are exact in any order, so this is the class that widening GPU by
    # GPU builds, without an object or a call per GPU (a node is measured at every change).
    used = [0, 0, 0, 0, 0, 0]
    idle = [0, 0, 0, 0, 0, 0]
    all_lanes = view.lanes
    for gpu in view.node.gpus:
        lanes = all_lanes[gpu.index]
        cap, per, size = lanes.capacity_mib, lanes.persistent_mib, lanes.lanes_mib
        com = per + size  # committed_mib
        capacity += cap
        committed += com
        tenants = lanes.tenants
        if tenants:
            occupied += 1
        if not gpu.healthy or lanes.is_exclusive:
            continue
        free = cap - com
        if free > max_free:
            max_free = free
        biggest = -1  # the largest lane (sizes are never negative), by comparisons, not max() calls
        for lane in lanes.lanes:
            if lane.size_mib > biggest:
                biggest = lane.size_mib
        headroom = free + biggest if lanes.lanes else free
        if headroom > max_headroom:
            max_headroom = headroom
        acc = used if tenants else idle
        if acc[0]:  # by comparison: the same values as min() and max(), no builtin call each
            if com < acc[1]:
                acc[1] = com
            if per < acc[2]:
                acc[2] = per
            if size > acc[3]:
                acc[3] = size
            if cap < acc[4]:
                acc[4] = cap
            if cap > acc[5]:
                acc[5] = cap
        else:
            acc[1:] = com, per, size, cap, cap
        acc[0] += 1
    bounds = BoundFacts(capacity, committed, _gpu_class(used), _gpu_class(idle))
    return NodeFacts(occupied, idle[0], max_free, max_headroom, bounds)


def _gpu_class(acc: list[int]) -> GpuClass | None:
    """The class _measure accumulated in ``acc`` (its count first), or None for no GPU."""
    return GpuClass(acc[1], acc[2], acc[3], acc[4], acc[5]) if acc[0] else None
