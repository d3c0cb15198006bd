"""Shared arithmetic for score plugins: how full a GPU and a node are after an option is applied."""

from __future__ import annotations

from gpulane_core.cluster import ClusterState, Placement


def gpu_fill_after(state: ClusterState, option: Placement) -> float:
    """Mean committed fraction of the chosen GPUs once the option is reserved (0 empty .. 1 full)."""
    view = state.nodes[option.node]
    total = 0.0
    for choice in option.gpus:
        lanes = view.lanes[choice.index]
        cap = lanes.capacity_mib
        total += min(1.0, (lanes.committed_mib + choice.plan.growth_mib) / cap) if cap > 0 else 1.0
    return total / len(option.gpus)


def node_fill_after(state: ClusterState, option: Placement) -> float:
    """Committed fraction of the whole node's GPU memory once the option is reserved."""
    view = state.nodes[option.node]
    cap = sum(g.capacity_mib for g in view.lanes.values())
    if cap <= 0:
        return 1.0
    committed = sum(g.committed_mib for g in view.lanes.values())
    committed += sum(c.plan.growth_mib for c in option.gpus)
    return min(1.0, committed / cap)


def empty_gpus_after(state: ClusterState, option: Placement) -> tuple[int, int]:
    """(healthy empty GPUs left on the node after the option, healthy GPUs on the node)."""
    view = state.nodes[option.node]
    chosen = {c.index for c in option.gpus}
    healthy = [g for g in view.node.gpus if g.healthy]
    empty = sum(1 for g in healthy if g.index not in chosen and view.lanes[g.index].is_empty)
    return empty, len(healthy)
