"""Shared arithmetic for score plugins: how full a GPU and a node are after an option is applied.

Node totals are computed once per node view and kept on it (``NodeView.derived``): every option on a
node needs them, and recomputing them per option made scoring quadratic in the GPUs of a node (and
per decision, a tenth of a scheduling cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulane_core.cluster import ClusterState, Placement
from gpulane_core.framework import CycleContext
from gpulane_core.model import NodeName


@dataclass(frozen=True, slots=True)
class NodeSummary:
    capacity_mib: int
    committed_mib: int
    healthy: int
    empty_healthy: frozenset[int]  # indices of healthy GPUs with no tenant


def node_summary(ctx: CycleContext, node: NodeName) -> NodeSummary:
    derived = ctx.state.nodes[node].derived
    cached = derived.get("summary")
    if isinstance(cached, NodeSummary):
        return cached
    summary = derived["summary"] = _summarize(ctx.state, node)
    return summary


def _summarize(state: ClusterState, node: NodeName) -> NodeSummary:
    view = state.nodes[node]
    capacity = committed = healthy = 0
    empty: set[int] = set()
    for gpu in view.node.gpus:
        lanes = view.lanes[gpu.index]
        capacity += lanes.capacity_mib
        committed += lanes.committed_mib
        if gpu.healthy:
            healthy += 1
            if lanes.is_empty:
                empty.add(gpu.index)
    return NodeSummary(capacity, committed, healthy, frozenset(empty))


def gpu_fill_after(ctx: CycleContext, option: Placement) -> float:
    """Mean committed fraction of the chosen GPUs once the option is reserved (0 empty .. 1 full)."""
    view = ctx.state.nodes[option.node]
    total = 0.0
    for choice in option.gpus:
        lanes = view.lanes[choice.index]
        cap = lanes.capacity_mib
        total += min(1.0, (lanes.committed_mib + choice.plan.growth_mib) / cap) if cap > 0 else 1.0
    return total / len(option.gpus)


def node_fill_after(ctx: CycleContext, option: Placement) -> float:
    """Committed fraction of the whole node's GPU memory once the option is reserved."""
    summary = node_summary(ctx, option.node)
    if summary.capacity_mib <= 0:
        return 1.0
    committed = summary.committed_mib + sum(c.plan.growth_mib for c in option.gpus)
    return min(1.0, committed / summary.capacity_mib)


def empty_gpus_after(ctx: CycleContext, option: Placement) -> tuple[int, int]:
    """(healthy empty GPUs left on the node after the option, healthy GPUs on the node)."""
    summary = node_summary(ctx, option.node)
    taken = sum(1 for c in option.gpus if c.index in summary.empty_healthy)
    return len(summary.empty_healthy) - taken, summary.healthy
