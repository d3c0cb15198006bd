"""Shared arithmetic for score plugins: how full a GPU and a node are after an option is applied.

Node totals are computed once per node view and kept on it (``NodeView.derived``): every option on a
node needs them, and recomputing them per option made scoring quadratic in the GPUs of a node (and
per decision, a tenth of a scheduling cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.cluster import ClusterState, NodeView, Placement
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
    return fills_after(ctx, (option,))[0][0]


def node_fill_after(ctx: CycleContext, option: Placement) -> float:
    """Committed fraction of the whole node's GPU memory once the option is reserved."""
    return fills_after(ctx, (option,))[0][1]


def fills_after(ctx: CycleContext, options: Sequence[Placement]) -> list[tuple[float, float]]:
    """(:func:`gpu_fill_after`, :func:`node_fill_after`) of each option, in one pass.

    One loop for all options of a decision, each node's view and totals looked up once: scoring
    called the two helpers per option and plugin, and their calls were most of a cycle's scoring.
    """
    nodes = ctx.state.nodes
    summaries: dict[NodeName, tuple[NodeView, NodeSummary]] = {}
    out: list[tuple[float, float]] = []
    for option in options:
        seen = summaries.get(option.node)
        if seen is None:
            seen = summaries[option.node] = (nodes[option.node], node_summary(ctx, option.node))
        view, summary = seen
        gpus = option.gpus
        if len(gpus) == 1:
            # One GPU (most options): its fill is the mean, as 0.0 + fill and fill / 1 are exactly.
            choice = gpus[0]
            lanes = view.lanes[choice.index]
            cap = lanes.capacity_mib
            growth = choice.plan.growth_mib
            gpu_fill = (lanes.committed_mib + growth) / cap if cap > 0 else 1.0
            gpu_fill = gpu_fill if gpu_fill < 1.0 else 1.0  # min(1.0, fill) without the call
        else:
            total = 0.0
            growth = 0
            for choice in gpus:
                lanes = view.lanes[choice.index]
                cap = lanes.capacity_mib
                total += min(1.0, (lanes.committed_mib + choice.plan.growth_mib) / cap) if cap > 0 else 1.0
                growth += choice.plan.growth_mib
            gpu_fill = total / len(gpus)
        capacity = summary.capacity_mib
        node_fill = (summary.committed_mib + growth) / capacity if capacity > 0 else 1.0
        node_fill = node_fill if node_fill < 1.0 else 1.0
        out.append((gpu_fill, node_fill))
    return out


def empty_gpus_after(ctx: CycleContext, option: Placement) -> tuple[int, int]:
    """(healthy empty GPUs left on the node after the option, healthy GPUs on the node)."""
    return empties_after(ctx, (option,))[0]


def empties_after(ctx: CycleContext, options: Sequence[Placement]) -> list[tuple[int, int]]:
    """:func:`empty_gpus_after` of each option, each node's totals looked up once."""
    summaries: dict[NodeName, NodeSummary] = {}
    out: list[tuple[int, int]] = []
    for option in options:
        summary = summaries.get(option.node)
        if summary is None:
            summary = summaries[option.node] = node_summary(ctx, option.node)
        empty = summary.empty_healthy
        gpus = option.gpus
        if len(gpus) == 1:
            taken = 1 if gpus[0].index in empty else 0
        else:
            taken = sum(1 for c in gpus if c.index in empty)
        out.append((len(empty) - taken, summary.healthy))
    return out
