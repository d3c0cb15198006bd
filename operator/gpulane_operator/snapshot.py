"""Rebuild the cluster's lane state from what the API says: GPU inventory plus pod assignments.

Nothing about lanes is remembered between cycles except what pods carry in their annotations (and
the few placements this process made that the watch has not shown yet). So a restarted operator,
or a second replica taking over, sees exactly the lanes that exist.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gpulane_core.cluster import ClusterState, GpuChoice, NodeView, Placement
from gpulane_core.lanes import AdmissionKind, AdmissionPlan, GpuLanes, Lane, Tenant, check_invariant
from gpulane_core.model import Gpu, Job, JobId, LaneId, NodeName
from gpulane_core.podcontract import Assignment

from gpulane_operator.crd import Reason, format_time
from gpulane_operator.inventory import NodeInventory

_LANE_SEQ = re.compile(r"^lane-(\d+)$")


@dataclass(frozen=True, slots=True)
class Lost:
    """A placed job whose node or GPU is gone or unhealthy."""

    job: JobId
    reason: Reason
    message: str
    node: NodeName
    force_delete: bool = False  # its kubelet is unreachable: it will never confirm the pod's end


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: ClusterState  # every node, every resident job
    schedulable: ClusterState  # what new placements may use (cordoned / not-ready nodes left out)
    lost: tuple[Lost, ...] = ()
    problems: tuple[str, ...] = ()  # invariant violations observed (should stay empty)
    unit_mib: Mapping[NodeName, int] = field(default_factory=dict)
    device_units: Mapping[NodeName, int] = field(default_factory=dict)  # the kubelet's count, where known
    # NotReady nodes holding jobs, not yet past the grace: when (epoch s) they will count as lost.
    loss_deadlines: Mapping[NodeName, float] = field(default_factory=dict)


def _lost_reason(
    a: Assignment, gpus_by_node: Mapping[NodeName, Mapping[int, Gpu]], existing_nodes: Collection[str]
) -> Lost | None:
    gpus = gpus_by_node.get(a.node)
    if gpus is None:
        # Force only when the Node object is gone: no kubelet will ever confirm the pod's end.
        message = f"node {a.node} is gone or has no GPUs anymore"
        return Lost(a.job, Reason.NODE_LOST, message, a.node, force_delete=a.node not in existing_nodes)
    for index, uuid in zip(a.gpu_indices, a.gpu_uuids, strict=True):
        gpu = gpus.get(index)
        if gpu is None or gpu.uuid != uuid:
            return Lost(a.job, Reason.GPU_LOST, f"GPU {uuid} (index {index}) is gone from node {a.node}", a.node)
        if not gpu.healthy:
            return Lost(a.job, Reason.GPU_LOST, f"GPU {uuid} (index {index}) on node {a.node} is unhealthy", a.node)
    return None


def _gpu_lanes(capacity: int, tenants: Sequence[Assignment]) -> GpuLanes:
    members: dict[LaneId, list[Assignment]] = defaultdict(list)
    for a in tenants:
        members[a.lane].append(a)
    lanes = []
    for lane_id, group in sorted(members.items()):
        exclusive = any(a.exclusive for a in group)
        size = capacity - sum(a.persistent_mib for a in group) if exclusive else max(a.ephemeral_mib for a in group)
        lanes.append(Lane(lane_id, size, tuple(a.job for a in group), exclusive=exclusive))
    seqs = [int(m.group(1)) for lane_id in members if (m := _LANE_SEQ.match(lane_id))]
    return GpuLanes(
        capacity_mib=capacity,
        lanes=tuple(lanes),
        tenants=tuple(Tenant(a.job, a.persistent_mib, a.ephemeral_mib, a.lane) for a in tenants),
        next_lane=max(seqs, default=-1) + 1,
    )


def assignment_job(a: Assignment) -> Job:
    """What the core needs to know about a resident job when its GPUShareJob is not at hand."""
    return Job(
        name=a.job,
        persistent_mib=a.persistent_mib,
        ephemeral_mib=a.ephemeral_mib,
        gpus=len(a.gpu_indices),
        job_class=a.job_class,
    )


def _not_ready(
    inventory: Mapping[NodeName, NodeInventory], now: float | None, grace_s: float | None
) -> tuple[dict[NodeName, str], dict[NodeName, float]]:
    """NotReady nodes past the grace (-> why they are lost) and within it (-> when they will be)."""
    lost: dict[NodeName, str] = {}
    deadlines: dict[NodeName, float] = {}
    if now is None or grace_s is None:
        return lost, deadlines
    for name, inv in inventory.items():
        since = inv.not_ready_since
        if since is None:
            continue
        if now >= since + grace_s:
            lost[name] = (f"node {name} has been NotReady for {now - since:.0f}s (since {format_time(since)}); "
                          "its kubelet does not answer")  # fmt: skip
        else:
            deadlines[name] = since + grace_s
    return lost, deadlines


@dataclass
class SnapshotMemo:
    """What earlier builds made from equal inputs: each resident job's Placement, and each GPU's lane state
    (with its invariant check) keyed by the GPU's size and tenants. A hit is the value building again
    would give, so results never depend on the memo; it only spares a cycle rebuilding thousands of
    unchanged GPUs. Each build keeps only the entries it used, so the memo never outgrows the cluster."""

    placements: dict[Assignment, Placement] = field(default_factory=dict)
    lanes: dict[tuple[int, tuple[Assignment, ...]], tuple[GpuLanes, tuple[str, ...]]] = field(default_factory=dict)


def _placement(a: Assignment) -> Placement:
    kind = AdmissionKind.EXCLUSIVE if a.exclusive else AdmissionKind.SHARE_LANE
    choices = tuple(
        GpuChoice(i, u, AdmissionPlan(kind, a.lane, a.lane_size_mib, 0))
        for i, u in zip(a.gpu_indices, a.gpu_uuids, strict=True)
    )
    return Placement(a.job, a.node, choices)


def build(
    inventory: Mapping[NodeName, NodeInventory],
    assignments: Iterable[Assignment],
    jobs: Mapping[JobId, Job] | None = None,
    *,
    now: float | None = None,
    loss_grace_s: float | None = None,
    existing_nodes: Collection[str] = frozenset(),
    memo: SnapshotMemo | None = None,
) -> Snapshot:
    """The ClusterState these assignments imply; lost ones are reported and left out.

    With `now` and `loss_grace_s`, jobs on a node NotReady for at least the grace are lost too (force
    delete: its kubelet does not answer); their memory stays counted, the node exists.
    `existing_nodes`: every Node object (a node missing from the inventory may still exist, without GPUs).
    `memo`: the caller's SnapshotMemo, carried from one cycle to the next (updated in place).
    """
    seen = memo if memo is not None else SnapshotMemo()
    used = SnapshotMemo()
    known = jobs or {}
    unreachable, not_ready_until = _not_ready(inventory, now, loss_grace_s)
    held: set[NodeName] = set()
    lost: list[Lost] = []
    per_gpu: dict[tuple[NodeName, int], list[Assignment]] = defaultdict(list)
    placements: dict[JobId, Placement] = {}
    resident: dict[JobId, Job] = {}
    gpus_by_node = {name: {g.index: g for g in inv.node.gpus} for name, inv in inventory.items()}
    for a in sorted(assignments, key=lambda a: a.job):
        held.add(a.node)
        gone = _lost_reason(a, gpus_by_node, existing_nodes)
        if gone is None and a.node in unreachable:
            gone = Lost(a.job, Reason.NODE_LOST, unreachable[a.node], a.node, force_delete=True)
        if gone is not None:
            lost.append(gone)
        gpus = gpus_by_node.get(a.node)
        if gpus is None or any(i not in gpus for i in a.gpu_indices):
            continue  # the node or a GPU is gone, nothing left to count
        for i in a.gpu_indices:
            per_gpu[(a.node, i)].append(a)
        placement = seen.placements.get(a) or _placement(a)
        used.placements[a] = placement
        placements[a.job] = placement
        resident[a.job] = known.get(a.job) or assignment_job(a)
    nodes: dict[NodeName, NodeView] = {}
    problems: list[str] = []
    idle: dict[int, GpuLanes] = {}  # one empty state per capacity: most GPUs of a large cluster hold nothing
    for name, inv in inventory.items():
        lanes = {}
        for gpu in inv.node.gpus:
            tenants = per_gpu.get((name, gpu.index))
            if not tenants:
                lanes[gpu.index] = idle.get(gpu.memory_mib) or idle.setdefault(gpu.memory_mib, GpuLanes(gpu.memory_mib))
                continue
            key = (gpu.memory_mib, tuple(tenants))
            known_lanes = seen.lanes.get(key)
            if known_lanes is None:
                gpu_state = _gpu_lanes(gpu.memory_mib, tenants)
                known_lanes = (gpu_state, tuple(check_invariant(gpu_state)))
            used.lanes[key] = known_lanes
            lanes[gpu.index] = known_lanes[0]
            problems += [f"{name}/gpu{gpu.index}: {p}" for p in known_lanes[1]]
        nodes[name] = NodeView(inv.node, lanes)
    if memo is not None:
        memo.placements, memo.lanes = used.placements, used.lanes
    state = ClusterState(nodes, placements, resident)
    cordoned = {name for name, inv in inventory.items() if not inv.schedulable}
    return Snapshot(
        state=state,
        schedulable=without_nodes(state, cordoned),
        lost=tuple(lost),
        problems=tuple(problems),
        unit_mib={name: inv.memory_unit_mib for name, inv in inventory.items()},
        device_units={name: inv.device_units for name, inv in inventory.items() if inv.device_units is not None},
        loss_deadlines={name: until for name, until in not_ready_until.items() if name in held},
    )


def without_nodes(state: ClusterState, names: set[NodeName]) -> ClusterState:
    if not names:
        return state
    gone = {job for job, p in state.placements.items() if p.node in names}
    return ClusterState(
        {n: v for n, v in state.nodes.items() if n not in names},
        {j: p for j, p in state.placements.items() if j not in gone},
        {j: job for j, job in state.jobs.items() if j not in gone},
    )
