"""One scheduling cycle: order the pending jobs, then filter, score and reserve each in turn.

The same pure function drives the operator (on the state it rebuilt from the API) and the simulator
(at every arrival and departure). Rules:

* Jobs are taken in the ordering policy's order; guaranteed jobs before best-effort ones.
* Backfill (Salus): a job that does not fit is skipped and later ones may still be placed. With
  backfill off, the first job that does not fit blocks everyone behind it (strict order).
* Candidate search follows kube-scheduler's ``percentageOfNodesToScore``: nodes are visited from a
  rotating start, and the search stops once enough feasible nodes were found (adaptive by default:
  all nodes below 100, else max(100, n * max(5, 50 - n/125) %)). A per-cycle index of each node's
  largest free GPU and empty-GPU count skips nodes that cannot fit without listing their options.
* For symmetric profiles (the built-in ones) identical choices are scored once: of all empty nodes
  of one shape only the lowest-named is scored, and of a node's identical empty GPUs only the
  lowest index (the tie-break would pick exactly those); the rotating search with its limit then
  runs over occupied nodes only. With ``percentage_of_nodes_to_score=100`` the result is identical
  to scoring every option (a property test checks this).
* :mod:`gpulane_core.search` does that search with less work and the same decisions: a node's
  fit is read from per-node facts where they decide it, and for profiles whose scores can be
  bounded from those facts (``spread``) nodes that cannot beat the best option so far are not
  scored (property tests compare it with scoring every option of every node in the window).
* Preemption: a guaranteed job that fits nowhere may release best-effort jobs
  (:mod:`gpulane_core.preemption`); the victims are released in the returned state and listed, the
  caller re-queues them.
* Every unplaced job gets a Status whose message names the shortfall; a job larger than every GPU,
  or wanting a GPU type or count no node has, is UnschedulableAndUnresolvable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpulane_core.cluster import ClusterState, Placement
from gpulane_core.framework import CycleContext, LaneReserve, Profile
from gpulane_core.model import Job, JobClass, JobId, NodeName, validate_job
from gpulane_core.ordering import TurnStats, order, parse_policy
from gpulane_core.preemption import plan_preemption
from gpulane_core.quantity import format_mib
from gpulane_core.registry import Registry, default_registry
from gpulane_core.search import Search
from gpulane_core.status import Code, Status

PLUGIN = "gpulane-scheduler"


@dataclass(frozen=True, slots=True)
class PendingJob:
    job: Job
    queued_at_s: float
    attained_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    ordering: str = "fifo"
    placement: str = "gpulane"
    preemption: bool = True
    backfill: bool = True
    # kube-scheduler's percentageOfNodesToScore: 0 = adaptive, 100 = score every feasible node.
    percentage_of_nodes_to_score: int = 0

    def validate(self) -> list[str]:
        problems: list[str] = []
        try:
            parse_policy(self.ordering)
        except ValueError as exc:
            problems.append(f"ordering: {exc}")
        if not self.placement:
            problems.append("placement: must name a placement policy")
        if not 0 <= self.percentage_of_nodes_to_score <= 100:
            problems.append(
                f"percentage_of_nodes_to_score: must be within 0..100, got {self.percentage_of_nodes_to_score}"
            )
        return problems


@dataclass(frozen=True, slots=True)
class Preemption:
    victim: JobId
    for_job: JobId
    reason: str


@dataclass(frozen=True, slots=True)
class CycleResult:
    state: ClusterState  # after all reservations (and preemptions)
    placements: tuple[Placement, ...]  # in decision order
    unschedulable: Mapping[JobId, Status] = field(default_factory=dict)
    preemptions: tuple[Preemption, ...] = ()
    queue: tuple[JobId, ...] = ()  # still-pending jobs in policy order


def nodes_to_find(total: int, percentage: int) -> int:
    """kube-scheduler's numFeasibleNodesToFind."""
    if total < 100 or percentage >= 100:
        return total
    pct = percentage if percentage > 0 else max(5, 50 - total // 125)
    return max(100, total * pct // 100)


def pending_stats(pending: Sequence[PendingJob], now_s: float) -> list[TurnStats]:
    """What the ordering policy may know about queued jobs.

    The weight policy's penalty is the working set in GiB (seconds at 1 GiB/s): any uniform bandwidth
    scales every penalty alike and so yields the same order.
    """
    return [
        TurnStats(
            job=p.job.name,
            arrival_s=p.queued_at_s,
            priority=p.job.priority,
            attained_s=p.attained_s,
            remaining_s=max(0.0, p.job.estimated_duration_s - p.attained_s),
            compute_s=p.attained_s,
            idle_s=max(0.0, now_s - p.queued_at_s - p.attained_s),
            penalty_s=p.job.working_set_mib / 1024,
        )
        for p in pending
    ]


def order_pending(pending: Sequence[PendingJob], ordering: str, now_s: float) -> list[PendingJob]:
    """Policy order, guaranteed jobs first (a stable partition keeps the policy order in each class)."""
    if len(pending) < 2:
        parse_policy(ordering)  # the same error for an unknown policy; one job is its own order
        return list(pending)
    by_name = {p.job.name: p for p in pending}
    if len(by_name) != len(pending):
        raise ValueError("pending: a job is queued twice")
    ordered = [by_name[j] for j in order(ordering, pending_stats(pending, now_s))]
    return [p for p in ordered if p.job.job_class is JobClass.GUARANTEED] + [
        p for p in ordered if p.job.job_class is not JobClass.GUARANTEED
    ]


Shape = tuple[int, int, int, frozenset[str], JobClass, frozenset[str] | None]


def _shape(job: Job) -> Shape:
    return (job.persistent_mib, job.ephemeral_mib, job.gpus, job.gpu_types, job.job_class, job.allowed_gpus)


def _dominates(shape: Shape, failed: Shape) -> bool:
    """A job at least as large as one that fit nowhere fits nowhere either (admission is monotone)."""
    return (
        shape[3] == failed[3]
        and shape[4] == failed[4]
        and shape[5] == failed[5]
        and shape[0] >= failed[0]
        and shape[1] >= failed[1]
        and shape[2] >= failed[2]
        and (shape[2] == 1) == (failed[2] == 1)
    )


class _Cycle:
    """The mutable bookkeeping of one call; never outlives it.

    The working state shares three dicts copied once from the input, and reservations update them
    in place (the default :class:`LaneReserve` semantics, same Salus plans and checks), so a cycle
    costs O(nodes + placements) once instead of a full copy per reservation. The input state is
    never touched; the returned state owns the dicts.
    """

    def __init__(self, state: ClusterState, profile: Profile, config: SchedulerConfig, now_s: float) -> None:
        self.profile = profile
        self.config = config
        self.now_s = now_s
        self._adopt(state)
        limit = nodes_to_find(len(self.nodes), config.percentage_of_nodes_to_score)
        self.search = Search(self.state, profile, limit)
        self.failed: list[Shape] = []
        self.explained: dict[Shape, Status] = {}
        self.refused: set[JobId] = set()  # jobs that had options, all refused by a filter

    def _adopt(self, state: ClusterState) -> None:
        self.nodes = dict(state.nodes)
        self.placements = dict(state.placements)
        self.jobs = dict(state.jobs)
        self.state = ClusterState(self.nodes, self.placements, self.jobs)

    def known_to_fail(self, job: Job) -> bool:
        shape = _shape(job)
        return any(_dominates(shape, f) for f in self.failed)

    def choose(self, job: Job) -> Placement | None:
        if not self.search.names:
            return None
        option, seen = self.search.choose(CycleContext(self.state, self.now_s), job)
        if not seen:
            self.failed.append(_shape(job))
        elif option is None:
            self.refused.add(job.name)
        return option

    def reserve(self, job: Job, option: Placement) -> None:
        if isinstance(self.profile.reserve, LaneReserve):
            if job.name in self.placements:
                raise ValueError(f"job {job.name} is already placed on {self.placements[job.name].node}")
            self.nodes[option.node] = self.nodes[option.node].with_job(job, option)
            self.placements[job.name] = option
            self.jobs[job.name] = job
        else:
            self._adopt(self.profile.reserve.reserve(self.state, job, option))
        self.search.index.refresh(self.state, option.node)

    def release(self, job: JobId) -> None:
        placement = self.state.placements.get(job)
        self._adopt(self.profile.reserve.unreserve(self.state, job))
        # Room was freed: what failed before may fit now.
        self.failed.clear()
        self.explained.clear()
        if placement is not None:
            self.search.index.refresh(self.state, placement.node)

    def explain(self, job: Job) -> Status:
        if job.name in self.refused:  # it fits, but a filter said no: name the filter's reason
            ctx = CycleContext(self.state, self.now_s)
            for name in self.search.names:
                for option in self.state.candidates(job, name):
                    status = self.profile.run_filters(ctx, job, option)
                    if not status.ok:
                        return status
        shape = _shape(job)
        if shape not in self.explained:
            self.explained[shape] = explain(self.state, job)
        return self.explained[shape]


def explain(state: ClusterState, job: Job) -> Status:
    """Why ``job`` fits nowhere right now, naming the shortfall; unresolvable when it never could."""
    need = f"{format_mib(job.persistent_mib)} persistent + {format_mib(job.ephemeral_mib)} ephemeral"
    gpus = [(name, g) for name, v in state.nodes.items() for g in v.node.gpus]
    typed = [(name, g) for name, g in gpus if job.accepts(g)]
    if not typed and job.allowed_gpus is not None:
        return Status.unschedulable("no GPU matches the job's device selectors", PLUGIN, resolvable=False)
    if not typed:
        have = ", ".join(sorted({g.model for _, g in gpus})) or "none"
        wanted = ", ".join(sorted(job.gpu_types))
        return Status.unschedulable(
            f"no GPU of type {wanted} exists (cluster has: {have})", PLUGIN, resolvable=False
        )
    big = [(name, g) for name, g in typed if g.memory_mib >= job.footprint_mib]
    if not big:
        largest = max(g.memory_mib for _, g in typed)
        return Status.unschedulable(
            f"job needs {need} = {format_mib(job.footprint_mib)} but the largest GPU holds {format_mib(largest)}",
            PLUGIN,
            resolvable=False,
        )
    if job.gpus > 1:
        per_node: dict[NodeName, int] = {}
        for name, _ in big:
            per_node[name] = per_node.get(name, 0) + 1
        if max(per_node.values()) < job.gpus:
            return Status.unschedulable(
                f"no node has {job.gpus} GPUs that can each hold {need} (most on one node: {max(per_node.values())})",
                PLUGIN,
                resolvable=False,
            )
        empty: dict[NodeName, int] = {}
        for name, g in big:
            if g.healthy and state.nodes[name].lanes[g.index].is_empty:
                empty[name] = empty.get(name, 0) + 1
        most = max(empty.items(), key=lambda kv: (kv[1], kv[0]), default=None)
        where = f"{most[1]} on {most[0]}" if most else "none"
        return Status.unschedulable(
            f"no node has {job.gpus} empty GPUs that can each hold {need}; most empty on one node: {where}",
            PLUGIN,
        )
    best: tuple[str, int] | None = None
    for name, g in big:
        lanes = state.nodes[name].lanes[g.index]
        if not g.healthy or lanes.is_exclusive:
            continue
        if best is None or lanes.free_mib > best[1]:
            best = (f"{name}/gpu{g.index}", lanes.free_mib)
    tail = (
        f"largest free is {format_mib(best[1])} on {best[0]}"
        if best
        else "every such GPU is unhealthy or held whole"
    )
    return Status.unschedulable(f"no GPU can hold {need}; {tail}", PLUGIN)


def schedule_cycle(
    state: ClusterState,
    pending: Sequence[PendingJob],
    config: SchedulerConfig,
    now_s: float,
    *,
    registry: Registry | None = None,
    profile: Profile | None = None,
) -> CycleResult:
    """Place as many pending jobs as the policies allow; see the module docstring for the rules.

    ``profile``: ``config.placement``'s profile, built by the caller once for many cycles (a
    simulation runs one cycle per event); otherwise it is built from ``registry`` for this cycle.
    """
    problems = config.validate()
    if profile is not None and profile.name != config.placement:
        problems.append(f"profile: {profile.name!r} given, but placement is {config.placement!r}")
    if problems:
        raise ValueError("scheduler config: " + "; ".join(problems))
    if profile is None:
        profile = (registry or default_registry()).profile(config.placement)
    ordered = order_pending(pending, config.ordering, now_s)
    cycle = _Cycle(state, profile, config, now_s)
    placements: list[Placement] = []
    unschedulable: dict[JobId, Status] = {}
    preemptions: list[Preemption] = []
    blocker: JobId | None = None
    for item in ordered:
        job = item.job
        if blocker is not None:
            unschedulable[job.name] = Status(
                Code.WAIT, (f"waits behind {blocker} (backfill is off)",), PLUGIN
            )
            continue
        bad = validate_job(job)
        if bad:
            unschedulable[job.name] = Status.unschedulable("; ".join(bad), PLUGIN, resolvable=False)
            continue
        if job.name in cycle.state.placements:
            where = cycle.state.placements[job.name].node
            unschedulable[job.name] = Status(Code.ERROR, (f"job is already placed on {where}",), PLUGIN)
            continue
        option = None if cycle.known_to_fail(job) else cycle.choose(job)
        # A job a filter refused has room: it waits by the profile's choice, not for want of memory.
        refused = job.name in cycle.refused
        if option is None and config.preemption and job.job_class is JobClass.GUARANTEED and not refused:
            plan = plan_preemption(cycle.state, job)
            if plan is not None:
                for victim in plan.victims:
                    cycle.release(victim)
                    reason = f"released for guaranteed job {job.name} on {plan.node}"
                    preemptions.append(Preemption(victim, job.name, reason))
                option = cycle.choose(job)
        if option is not None:
            cycle.reserve(job, option)
            placements.append(option)
            continue
        unschedulable[job.name] = cycle.explain(job)
        if not config.backfill:
            blocker = job.name
    placed = {p.job for p in placements}
    queue = tuple(p.job.name for p in ordered if p.job.name not in placed)
    return CycleResult(cycle.state, tuple(placements), unschedulable, tuple(preemptions), queue)
