"""Salus memory lanes on one GPU: admission, release and the safety invariant.

A GPU of capacity C holds a persistent region (the sum of its jobs' persistent memory) and a set of
lanes. Jobs in one lane take turns at iteration boundaries, so a lane needs only the largest
ephemeral peak among its jobs. The safety condition (seed 001)

    sum of persistent memory of all jobs on the GPU + sum of lane sizes <= C

guarantees that every lane can always run one iteration. Admission follows the paper's
Algorithm 1: open a new lane of size E when it fits; else join the best-fitting lane with size >= E;
else grow the smallest lane whose growth keeps the condition; else the job is not placeable here.
When a job leaves, its lane shrinks to the largest remaining peak, or closes.

A *time-shared* GPU (``GpuLanes.time_shared``: Salus with its lane manager off, as in its SRTF and
FAIR evaluation) runs one iteration at a time, so it has at most one lane: admission shares or grows
that lane and never opens a second, and the condition reads sum of persistent + largest peak <= C.

Every function here is pure: states are frozen and each change returns a new state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gpulane_core.model import JobId, LaneId


class AdmissionKind(enum.Enum):
    NEW_LANE = "new-lane"
    SHARE_LANE = "share-lane"
    GROW_LANE = "grow-lane"
    EXCLUSIVE = "exclusive"  # a whole-GPU (multi-GPU job) lane


@dataclass(frozen=True, slots=True)
class Lane:
    id: LaneId
    size_mib: int
    jobs: tuple[JobId, ...]
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class Tenant:
    """A job resident on a GPU, with the lane it runs its iterations in."""

    job: JobId
    persistent_mib: int
    ephemeral_mib: int
    lane: LaneId


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """What admitting a job would do; applying it is :func:`admit`."""

    kind: AdmissionKind
    lane: LaneId
    lane_size_mib: int  # the lane's size after admission
    growth_mib: int  # how much the GPU's committed memory grows (persistent + lane change)


@dataclass(frozen=True, slots=True)
class GpuLanes:
    """The lane state of one GPU. ``next_lane`` makes lane ids unique over the GPU's life."""

    capacity_mib: int
    lanes: tuple[Lane, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    next_lane: int = 0
    time_shared: bool = False  # one iteration at a time on the whole GPU: at most one lane
    # Totals computed once per (immutable) state: schedulers read them for every option they score.
    _persistent_total: int = field(default=0, init=False, repr=False, compare=False)
    _lanes_total: int = field(default=0, init=False, repr=False, compare=False)
    _exclusive: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_persistent_total", sum(t.persistent_mib for t in self.tenants))
        object.__setattr__(self, "_lanes_total", sum(lane.size_mib for lane in self.lanes))
        object.__setattr__(self, "_exclusive", any(lane.exclusive for lane in self.lanes))

    @property
    def persistent_mib(self) -> int:
        return self._persistent_total

    @property
    def lanes_mib(self) -> int:
        return self._lanes_total

    @property
    def committed_mib(self) -> int:
        return self._persistent_total + self._lanes_total

    @property
    def free_mib(self) -> int:
        return self.capacity_mib - self._persistent_total - self._lanes_total

    @property
    def is_empty(self) -> bool:
        return not self.tenants

    @property
    def is_exclusive(self) -> bool:
        return self._exclusive

    def with_lanes(self, lanes: tuple[Lane, ...], tenants: tuple[Tenant, ...], next_lane: int) -> GpuLanes:
        """``dataclasses.replace`` of the three fields admission changes, by the constructor: replace
        looks the fields up on every call, and the scheduler and simulator change lanes at every
        reservation and release."""
        return GpuLanes(self.capacity_mib, lanes, tenants, next_lane, self.time_shared)

    def tenant(self, job: JobId) -> Tenant | None:
        for t in self.tenants:
            if t.job == job:
                return t
        return None

    def lane(self, lane_id: LaneId) -> Lane:
        for lane in self.lanes:
            if lane.id == lane_id:
                return lane
        raise KeyError(f"no lane {lane_id}")


def plan_admission(state: GpuLanes, persistent_mib: int, ephemeral_mib: int) -> AdmissionPlan | None:
    """Algorithm 1 of Salus for a job needing (P, E); None when it cannot be placed on this GPU."""
    if persistent_mib < 0 or ephemeral_mib < 0:
        raise ValueError("memory requirements must not be negative")
    if state.is_exclusive:
        return None
    p, e, cap = persistent_mib, ephemeral_mib, state.capacity_mib
    base = state._persistent_total + p + state._lanes_total
    # 1. A fresh lane of size E: new lanes run concurrently, so they are preferred over sharing
    #    (a time-shared GPU opens its one lane only when it has none).
    if base + e <= cap and not (state.time_shared and state.lanes):
        return AdmissionPlan(AdmissionKind.NEW_LANE, _lane_id(state.next_lane), e, p + e)
    if base > cap:
        return None  # not even the persistent part fits
    # 2. The best-fitting existing lane that already holds E (smallest size >= E).
    fitting = [lane for lane in state.lanes if lane.size_mib >= e]
    if fitting:
        best = min(fitting, key=lambda lane: (lane.size_mib, lane.id))
        return AdmissionPlan(AdmissionKind.SHARE_LANE, best.id, best.size_mib, p)
    # 3. Grow the smallest lane whose growth to E keeps the safety condition.
    for lane in sorted(state.lanes, key=lambda lane: (lane.size_mib, lane.id)):
        if base - lane.size_mib + e <= cap:
            return AdmissionPlan(AdmissionKind.GROW_LANE, lane.id, e, p + e - lane.size_mib)
    return None


def plan_exclusive(state: GpuLanes, persistent_mib: int, ephemeral_mib: int) -> AdmissionPlan | None:
    """A whole GPU for one job (multi-GPU jobs): only an empty, large enough GPU qualifies."""
    if not state.is_empty or persistent_mib + ephemeral_mib > state.capacity_mib:
        return None
    size = state.capacity_mib - persistent_mib
    return AdmissionPlan(AdmissionKind.EXCLUSIVE, _lane_id(state.next_lane), size, state.capacity_mib)


def admit(
    state: GpuLanes, job: JobId, persistent_mib: int, ephemeral_mib: int, plan: AdmissionPlan
) -> GpuLanes:
    """Apply a plan made by :func:`plan_admission` or :func:`plan_exclusive` for this state."""
    if state.tenant(job) is not None:
        raise ValueError(f"job {job} is already on this GPU")
    tenant = Tenant(job, persistent_mib, ephemeral_mib, plan.lane)
    if plan.kind in (AdmissionKind.NEW_LANE, AdmissionKind.EXCLUSIVE):
        lane = Lane(plan.lane, plan.lane_size_mib, (job,), exclusive=plan.kind is AdmissionKind.EXCLUSIVE)
        new = state.with_lanes((*state.lanes, lane), (*state.tenants, tenant), state.next_lane + 1)
    else:
        lanes = tuple(
            Lane(lane.id, plan.lane_size_mib, (*lane.jobs, job), lane.exclusive) if lane.id == plan.lane else lane
            for lane in state.lanes
        )
        new = state.with_lanes(lanes, (*state.tenants, tenant), state.next_lane)
    problems = check_invariant(new)
    if problems:
        raise ValueError(f"plan {plan} is stale for this GPU: {'; '.join(problems)}")
    return new


def release(state: GpuLanes, job: JobId) -> GpuLanes:
    """Remove a job; its lane shrinks to the largest remaining peak or closes. Idempotent."""
    tenant = state.tenant(job)
    if tenant is None:
        return state
    tenants = tuple(t for t in state.tenants if t.job != job)
    lanes: list[Lane] = []
    for lane in state.lanes:
        if lane.id != tenant.lane:
            lanes.append(lane)
            continue
        remaining = tuple(j for j in lane.jobs if j != job)
        if remaining:
            peak = max(t.ephemeral_mib for t in tenants if t.lane == lane.id)
            lanes.append(Lane(lane.id, peak, remaining, lane.exclusive))
    return state.with_lanes(tuple(lanes), tenants, state.next_lane)


def check_invariant(state: GpuLanes) -> list[str]:
    """Every way the state breaks the lane rules, as readable sentences (empty when sound)."""
    problems: list[str] = []
    if state.committed_mib > state.capacity_mib:
        problems.append(
            f"safety condition broken: persistent {state.persistent_mib} MiB + lanes {state.lanes_mib} MiB"
            f" > capacity {state.capacity_mib} MiB"
        )
    seen: dict[JobId, LaneId] = {}
    for lane in state.lanes:
        if not lane.jobs:
            problems.append(f"{lane.id} is empty but still allocated")
        for job in lane.jobs:
            if job in seen:
                problems.append(f"job {job} is in {seen[job]} and {lane.id}")
            seen[job] = lane.id
        members = [t for t in state.tenants if t.lane == lane.id]
        if {t.job for t in members} != set(lane.jobs):
            problems.append(f"{lane.id} members {lane.jobs} disagree with tenants")
        if members and not lane.exclusive and lane.size_mib != max(t.ephemeral_mib for t in members):
            problems.append(f"{lane.id} size {lane.size_mib} MiB is not its largest peak")
        if state.time_shared and len(state.lanes) > 1:
            problems.append(f"{lane.id} is one of {len(state.lanes)} lanes on a time-shared GPU (at most one)")
        if lane.exclusive and len(state.lanes) != 1:
            problems.append(f"{lane.id} is exclusive but shares the GPU with other lanes")
    if len({lane.id for lane in state.lanes}) != len(state.lanes):
        problems.append("duplicate lane ids")
    for t in state.tenants:
        if t.job not in seen:
            problems.append(f"job {t.job} has no lane")
    if len({t.job for t in state.tenants}) != len(state.tenants):
        problems.append("a job is resident twice")
    return problems


def assert_invariant(state: GpuLanes) -> None:
    problems = check_invariant(state)
    if problems:
        raise AssertionError("; ".join(problems))


def _lane_id(seq: int) -> LaneId:
    return LaneId(f"lane-{seq}")
