"""Job-independent extremes of a node's GPUs: fit checks and score bounds without listing options.

The scheduler keeps one :class:`NodeFacts` per node for a cycle and re-measures a node when a
reservation changes it. Fit checks read ``max_free_mib``, ``max_headroom_mib`` and ``empty``; a
bounded score plugin (:class:`gpulane_core.framework.BoundedScorePlugin`) reads :class:`BoundFacts` to
cap the score of every option a job could have on the node, so the search can skip nodes that cannot
beat the best option found so far. :meth:`BoundFacts.merge` builds the facts of a virtual node at
least as favourable to every bound as each merged one, which bounds a whole group of nodes at once.
"""

from __future__ import annotations

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
    used: GpuClass | None = None
    idle: GpuClass | None = None
    idle_count = 0
    for gpu in view.node.gpus:
        lanes = view.lanes[gpu.index]
        cap, com = lanes.capacity_mib, lanes.committed_mib
        capacity += cap
        committed += com
        if lanes.tenants:
            occupied += 1
        if not gpu.healthy or lanes.is_exclusive:
            continue
        free = cap - com
        max_free = max(max_free, free)
        sizes = [lane.size_mib for lane in lanes.lanes]
        max_headroom = max(max_headroom, free + max(sizes) if sizes else free)
        if lanes.tenants:
            used = _widen(used, com, lanes.persistent_mib, lanes.lanes_mib, cap)
        else:
            idle_count += 1
            idle = _widen(idle, com, lanes.persistent_mib, lanes.lanes_mib, cap)
    return NodeFacts(occupied, idle_count, max_free, max_headroom, BoundFacts(capacity, committed, used, idle))


def _widen(into: GpuClass | None, committed: int, persistent: int, lanes: int, capacity: int) -> GpuClass:
    if into is None:
        return GpuClass(committed, persistent, lanes, capacity, capacity)
    if (
        committed >= into.committed_min
        and persistent >= into.persistent_min
        and lanes <= into.lanes_max
        and into.capacity_min <= capacity <= into.capacity_max
    ):
        return into  # the usual case on a node of like GPUs: nothing new, no allocation
    return into.merge(GpuClass(committed, persistent, lanes, capacity, capacity))
