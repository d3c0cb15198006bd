"""The event-driven simulator: jobs arrive, the core scheduler places them, lanes take turns.

Model (docs/simulator.md has the long form):

* Placement is ``gpulane_core.scheduler.schedule_cycle``, run once per instant that saw an arrival or
  a departure, with the policy's queue order. Preempted jobs return to the queue with their progress.
* Every lane runs one iteration at a time; lanes of a GPU run side by side (``LaneMode.CONCURRENT``)
  or the whole GPU is one lane (``LaneMode.SINGLE``). Turns pass at iteration boundaries by the
  node coordinator's own rules, :mod:`gpulane_core.turns` (strict, rounds or run-to-completion).
* A job whose working set is not resident (another job of its lane ran since) first copies it over
  PCIe: ``working_set / bandwidth`` on the GPU's single copy engine (loads before prefetches, FIFO;
  a load aborts a prefetch in flight, which is copied again afterwards).
  With prefetch on, when a job starts computing the lane's next job (as the policy would choose it
  once this iteration ends) is copied in the background, and again when a job joins the lane
  mid-iteration (it may be the new runner-up). A prefetch whose job's turn comes before the copy
  is done becomes a load: it leaves the prefetch queue, and in flight no other load aborts it.
* Optional co-location slowdown: an iteration that starts while k lanes compute on its GPU takes
  ``iteration_s * (1 + slowdown * (k - 1))``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from gpulane_core.cluster import ClusterState, Placement
from gpulane_core.model import Job, JobId, NodeName
from gpulane_core.ordering import OrderingPolicy, TurnStats, order
from gpulane_core.quantity import MIB
from gpulane_core.registry import default_registry
from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle
from gpulane_core.status import Code
from gpulane_core.turns import OrderOf, TurnState, next_turn, prefetch_target

from gpulane_sim.config import SimConfig
from gpulane_sim.events import Event, EventKind, EventQueue, GpuKey, LaneKey, Transfer
from gpulane_sim.policies import POLICIES, LaneMode, PolicySpec, SimPolicy
from gpulane_sim.result import JobOutcome, Segment, SimResult

_STABLE = frozenset({OrderingPolicy.FIFO, OrderingPolicy.PACK, OrderingPolicy.SRTF, None})


class SimulationError(RuntimeError):
    """The simulation cannot finish (a job can never be placed); the message names the job."""


@dataclass(slots=True)
class _Run:
    job: Job
    queued_at_s: float
    done: int = 0
    attained_s: float = 0.0
    first_start_s: float | None = None
    finish_s: float | None = None
    lane: LaneKey | None = None
    gpus: tuple[GpuKey, ...] = ()
    epoch: int = 0
    window: deque[tuple[float, float]] = field(default_factory=deque)


@dataclass(slots=True)
class _Lane:
    key: LaneKey
    members: list[JobId] = field(default_factory=list)
    current: JobId | None = None
    current_span: tuple[float, float] = (0.0, 0.0)  # the running iteration's start and end
    waiting: JobId | None = None
    resident: JobId | None = None
    prefetched: JobId | None = None
    prefetch_done: bool = False
    turns: TurnState = field(default_factory=TurnState)
    cached: list[JobId] | None = None  # the order, for policies whose order only membership changes
    order_of: OrderOf | None = None  # for such policies: the lane's order function, made once


@dataclass(slots=True)
class _CopyEngine:
    busy: bool = False
    current: Transfer | None = None  # the copy in flight
    generation: int = 0  # bumped when a prefetch in flight is aborted: its completion event is stale
    loads: deque[Transfer] = field(default_factory=deque)
    prefetches: deque[Transfer] = field(default_factory=deque)


class Simulation:
    """One run of one policy over one workload; ``run()`` returns the result."""

    def __init__(
        self,
        jobs: Sequence[Job],
        policy: SimPolicy,
        config: SimConfig,
        static_order: Sequence[JobId] | None = None,
        spec: PolicySpec | None = None,
    ) -> None:
        problems = config.validate()
        if problems:
            raise ValueError("; ".join(problems))
        self.spec = spec or POLICIES[policy]  # ``spec``: a configuration outside the table (the GA's)
        if self.spec.ordering is None and static_order is None:
            raise ValueError(f"policy {policy.value} needs a static order")
        self.policy = policy
        self.config = config
        self.rank = {j: i for i, j in enumerate(static_order or ())}
        if static_order is not None and set(self.rank) != {j.name for j in jobs}:
            raise ValueError("static_order: must list every job exactly once")
        self.jobs = list(jobs)
        if self.spec.ordering is None:
            # The static order also orders the queue: rank as priority (higher = earlier).
            n = len(self.rank)
            self.jobs = [_with_priority(j, n - self.rank[j.name]) for j in jobs]
        self.stable = self.spec.ordering in _STABLE  # once: an Enum hashes in Python, per turn it showed
        # Read at every iteration: decided once, not looked up through spec and config per event.
        self.windowed = self.spec.ordering is OrderingPolicy.WEIGHT
        self.record = config.record_segments
        self.slowdown = config.colocation_slowdown
        self.discipline = self.spec.discipline
        queue_order = self.spec.ordering.value if self.spec.ordering else "fifo"
        self.sched = SchedulerConfig(ordering=queue_order, placement=placement_for(self.spec, config))
        self.profile = default_registry().profile(self.sched.placement)  # once, not once per cycle
        # One iteration at a time per GPU: one Salus lane per GPU (sum of persistent + largest peak).
        self.state = config.cluster(time_shared=self.spec.lanes is LaneMode.SINGLE)
        self.events = EventQueue()
        self.runs: dict[JobId, _Run] = {}
        self.pending: dict[JobId, PendingJob] = {}
        self.lanes: dict[LaneKey, _Lane] = {}
        self.engines: dict[GpuKey, _CopyEngine] = {}
        self.computing: dict[GpuKey, int] = {}
        self.busy_since: dict[GpuKey, float] = {}
        self.busy_s = 0.0
        self.bytes_moved = 0
        self.transfers = 0
        self.transfer_s = 0.0
        self.committed_mib = 0
        self.node_committed: dict[str, int] = {}
        self.committed_integral = 0.0
        self.last_change_s = 0.0
        self.schedule_queued = False
        self.segments: list[Segment] = []
        self.now = 0.0

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> SimResult:
        for job in self.jobs:
            self.runs[job.name] = _Run(job, job.arrival_s)
        self.events.preload((job.arrival_s, Event(EventKind.ARRIVAL, job=job.name)) for job in self.jobs)
        events, iteration_done, arrival = self.events, EventKind.ITERATION_DONE, EventKind.ARRIVAL
        while events:
            self.now, event = events.pop()
            kind = event.kind
            if kind is iteration_done:  # the commonest kind first; the kinds are disjoint
                self._iteration_done(event)
            elif kind is arrival:
                assert event.job is not None
                self.pending[event.job] = PendingJob(self.runs[event.job].job, self.now)
                self._queue_schedule()
            elif kind is EventKind.TRANSFER_DONE:
                assert event.transfer is not None
                self._transfer_done(event.transfer, event.epoch)
            else:
                self.schedule_queued = False
                self._schedule()
        unfinished = [j for j, r in self.runs.items() if r.finish_s is None]
        if unfinished:
            raise SimulationError(f"job {unfinished[0]} never finished ({len(unfinished)} unfinished)")
        return self._result()

    def _queue_schedule(self) -> None:
        if not self.schedule_queued:
            self.schedule_queued = True
            self.events.push(self.now, Event(EventKind.SCHEDULE))

    # -- placement ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not self.pending:
            return
        result = schedule_cycle(self.state, list(self.pending.values()), self.sched, self.now, profile=self.profile)
        for name, status in result.unschedulable.items():
            if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                raise SimulationError(f"job {name} can never be placed: {status.message}")
        for pre in result.preemptions:
            self._evict(pre.victim)
        changed = [str(p.node) for p in result.placements]
        changed += [str(self.state.placements[p.victim].node) for p in result.preemptions]
        self.state = result.state
        self._account_memory(self.state, changed)
        for placement in result.placements:
            self._start(placement)

    def _account_memory(self, new_state: ClusterState, nodes: Iterable[str]) -> None:
        """Integrate committed lane memory over time; only the nodes that changed are re-summed."""
        self.committed_integral += self.committed_mib * (self.now - self.last_change_s)
        self.last_change_s = self.now
        for name in set(nodes):
            view = new_state.nodes[NodeName(name)]
            total = sum(g.committed_mib for g in view.lanes.values())
            self.committed_mib += total - self.node_committed.get(name, 0)
            self.node_committed[name] = total

    def _start(self, placement: Placement) -> None:
        run = self.runs[placement.job]
        self.pending.pop(placement.job, None)
        first = placement.first
        lane_id = "gpu" if self.spec.lanes is LaneMode.SINGLE else str(first.lane)
        key: LaneKey = (str(placement.node), first.index, lane_id)
        run.lane = key
        run.gpus = tuple((str(placement.node), c.index) for c in placement.gpus)
        lane = self.lanes.setdefault(key, _Lane(key))
        lane.members.append(placement.job)
        lane.cached = None
        if lane.current is not None and self.config.prefetch:
            # A job that joins mid-iteration may be the new runner-up: prefetch it now, not at the
            # next iteration's start (by when its turn may have come).
            self._prefetch(lane, lane.current, *lane.current_span)
        self._kick(lane)

    def _evict(self, victim: JobId) -> None:
        run = self.runs[victim]
        run.epoch += 1  # in-flight events of the victim become stale
        lane = self.lanes.get(run.lane) if run.lane else None
        if lane is not None:
            if lane.current == victim:
                lane.current = None
                self._compute_stops(run)
            if lane.waiting == victim:
                lane.waiting = None
            if lane.resident == victim:
                lane.resident = None
            lane.members.remove(victim)
            lane.turns = lane.turns.without(victim)
            lane.cached = None
            if not lane.members:
                del self.lanes[lane.key]
            else:
                self._kick(lane)
        run.lane, run.gpus = None, ()
        self.pending[victim] = PendingJob(run.job, self.now, run.attained_s)

    # -- turns ----------------------------------------------------------------------------------
    def _stats(self, name: JobId, now: float, extra: tuple[float, float] | None = None) -> TurnStats:
        run = self.runs[name]
        job = run.job
        attained = run.attained_s + (extra[1] - extra[0] if extra else 0.0)
        compute = idle = 0.0
        if self.spec.ordering is OrderingPolicy.WEIGHT:
            lo = now - self.config.window_s
            while run.window and run.window[0][1] <= lo:
                run.window.popleft()
            spans = list(run.window) + ([extra] if extra else [])
            compute = sum(max(0.0, min(e, now) - max(s, lo)) for s, e in spans)
            idle = max(0.0, now - max(job.arrival_s, lo) - compute)
        return TurnStats(
            job=name,
            arrival_s=job.arrival_s,
            priority=job.priority,
            attained_s=attained,
            remaining_s=max(0.0, job.estimated_duration_s - attained),
            compute_s=compute,
            idle_s=idle,
            penalty_s=job.working_set_mib * MIB / self.config.bandwidth_bytes_s,
            iterations_done=run.done + (1 if extra else 0),
        )

    def _order(
        self, names: Sequence[JobId], now: float, current: tuple[JobId, float, float] | None = None
    ) -> list[JobId]:
        if self.spec.ordering is None:
            return sorted(names, key=lambda j: self.rank[j])
        stats = [
            self._stats(j, now, (current[1], current[2]) if current and current[0] == j else None)
            for j in names
        ]
        return order(self.spec.ordering, stats)

    def _stable_order(self, lane: _Lane) -> list[JobId] | None:
        """The cached order when only membership can change it, else None.

        FIFO and PACK keys never change, a static order never does, and under SRTF only the running
        job's remaining time drops, which keeps the first job first and the others as they were.
        """
        if not self.stable:
            return None
        if lane.cached is None:
            lane.cached = self._order(lane.members, self.now)
        return lane.cached

    def _order_of(self, lane: _Lane, now: float, current: tuple[JobId, float, float] | None = None) -> OrderOf:
        """The policy's order of some lane members (``current``: a running iteration counted as done)."""
        if self.stable:
            # The order reads neither the clock nor the running iteration: one function per lane.
            if lane.order_of is None:
                lane.order_of = self._make_order_of(lane, now, current)
            return lane.order_of
        return self._make_order_of(lane, now, current)

    def _make_order_of(self, lane: _Lane, now: float, current: tuple[JobId, float, float] | None) -> OrderOf:

        def order_of(names: Sequence[JobId]) -> Sequence[JobId]:
            stable = self._stable_order(lane)
            if stable is None:
                return self._order(names, now, current)
            if len(names) == len(lane.members):
                return stable
            keep = set(names)
            return [j for j in stable if j in keep]

        return order_of

    def _next_turn(self, lane: _Lane) -> JobId:
        # A simulated job always wants its next iteration: every member asks.
        members = lane.members
        pick, lane.turns = next_turn(self.discipline, lane.turns, members, members, self._order_of(lane, self.now))
        assert pick is not None
        return pick

    def _peek_after(self, lane: _Lane, name: JobId, start: float, end: float) -> JobId | None:
        """The runner-up to prefetch while ``name`` computes ``start..end`` (gpulane_core.turns)."""
        if len(lane.members) == 1:
            return None  # a lane of one (``name``): prefetch_target's answer when nobody else asks
        order_of = self._order_of(lane, end, (name, start, end))
        run = self.runs[name]
        if run.done + 1 < run.job.iterations:
            return prefetch_target(self.discipline, lane.turns, lane.members, name, lane.members, order_of)
        # Its last iteration: the lane will be the others' (the coordinator learns it at the leave).
        live = [j for j in lane.members if j != name]
        return prefetch_target(self.discipline, lane.turns.without(name), live, name, live, order_of)

    def _kick(self, lane: _Lane) -> None:
        if lane.current is not None or lane.waiting is not None or not lane.members:
            return
        name = self._next_turn(lane)
        job = self.runs[name].job
        if lane.resident == name or job.working_set_mib == 0:
            self._compute(lane, name)
        elif lane.prefetched == name:
            if lane.prefetch_done:
                self._compute(lane, name)
            else:
                lane.waiting = name
                self._promote(lane, name)
        else:
            lane.waiting = name
            self._request(lane, name, prefetch=False)

    def _compute(self, lane: _Lane, name: JobId) -> None:
        run = self.runs[name]
        now = self.now
        lane.current = name
        lane.resident = name
        if lane.prefetched == name:
            lane.prefetched, lane.prefetch_done = None, False
        computing = self.computing
        gpus = run.gpus
        active = computing.get(gpus[0], 0)
        duration = run.job.iteration_s * (1.0 + self.slowdown * active)
        for g in gpus:
            count = computing.get(g, 0)
            if count == 0:
                self.busy_since[g] = now
            computing[g] = count + 1
        if run.first_start_s is None:
            run.first_start_s = now
        end = now + duration
        lane.current_span = (now, end)
        self.events.push(end, Event(EventKind.ITERATION_DONE, name, lane.key, run.epoch, now))
        if self.config.prefetch:
            self._prefetch(lane, name, now, end)

    def _prefetch(self, lane: _Lane, name: JobId, start: float, end: float) -> None:
        """Copy the runner-up in the background while ``name`` computes ``start..end``."""
        nxt = self._peek_after(lane, name, start, end)
        if (
            nxt is not None
            and nxt != name
            and nxt != lane.prefetched
            and nxt != lane.resident
            and self.runs[nxt].job.working_set_mib > 0
        ):
            lane.prefetched, lane.prefetch_done = nxt, False
            self._request(lane, nxt, prefetch=True)

    def _compute_stops(self, run: _Run) -> None:
        computing = self.computing
        for g in run.gpus:
            count = computing[g] = computing[g] - 1
            if count == 0:
                self.busy_s += self.now - self.busy_since.pop(g)

    def _iteration_done(self, event: Event) -> None:
        assert event.job is not None and event.lane is not None
        run = self.runs[event.job]
        if event.epoch != run.epoch:
            return
        lane = self.lanes[event.lane]
        lane.current = None
        self._compute_stops(run)
        if self.record:
            self.segments.append(Segment(event.lane, event.job, "compute", event.start_s, self.now))
        run.done += 1
        run.attained_s += self.now - event.start_s
        if self.windowed:
            run.window.append((event.start_s, self.now))
        if run.done >= run.job.iterations:
            run.finish_s = self.now
            lane.members.remove(event.job)
            lane.turns = lane.turns.without(event.job)
            lane.cached = None
            self.pending.pop(event.job, None)
            node = self.state.placements[event.job].node
            self.state = self.state.unreserve(event.job)
            self._account_memory(self.state, [str(node)])
            if not lane.members:
                del self.lanes[lane.key]
            if self.pending:  # an empty queue's pass places nothing; an arrival queues its own
                self._queue_schedule()
        if lane.members:
            self._kick(lane)

    # -- copies ---------------------------------------------------------------------------------
    def _request(self, lane: _Lane, name: JobId, *, prefetch: bool) -> None:
        run = self.runs[name]
        nbytes = run.job.working_set_mib * MIB
        gpu = run.gpus[0]
        transfer = Transfer(
            gpu, lane.key, name, prefetch, run.epoch, nbytes / self.config.bandwidth_bytes_s, nbytes
        )
        engine = self.engines.setdefault(gpu, _CopyEngine())
        (engine.prefetches if prefetch else engine.loads).append(transfer)
        if not prefetch and engine.current is not None and engine.current.prefetch:
            # A load never waits behind a prefetch: the prefetch is aborted and copied again later.
            engine.prefetches.appendleft(engine.current)
            engine.current, engine.busy = None, False
            engine.generation += 1
        self._pump(gpu)

    def _promote(self, lane: _Lane, name: JobId) -> None:
        """The prefetch of ``name`` became a demand (its turn came first): copy it as a load would be.

        One still queued leaves the prefetch queue for the loads' (a load never waits behind a
        prefetch, nor should this one); one in flight is no longer aborted by another lane's load.
        """
        engine = self.engines[self.runs[name].gpus[0]]
        current = engine.current
        if current is not None and current.prefetch and current.job == name and current.lane == lane.key:
            engine.current = replace(current, prefetch=False)
            return
        for transfer in engine.prefetches:
            if transfer.job == name and transfer.lane == lane.key:
                engine.prefetches.remove(transfer)
                break
        self._request(lane, name, prefetch=False)

    def _pump(self, gpu: GpuKey) -> None:
        engine = self.engines[gpu]
        if engine.busy:
            return
        transfer = None
        while transfer is None and (engine.loads or engine.prefetches):
            candidate = (engine.loads or engine.prefetches).popleft()
            # A copy queued for a job that was preempted since is dropped before it starts.
            if candidate.epoch == self.runs[candidate.job].epoch:
                transfer = candidate
        if transfer is None:
            return
        engine.busy, engine.current = True, transfer
        self.events.push(
            self.now + transfer.seconds,
            Event(EventKind.TRANSFER_DONE, start_s=self.now, transfer=transfer, epoch=engine.generation),
        )

    def _transfer_done(self, transfer: Transfer, generation: int) -> None:
        engine = self.engines[transfer.gpu]
        if generation != engine.generation:
            return  # an aborted prefetch
        engine.busy, engine.current = False, None
        self.bytes_moved += transfer.nbytes
        self.transfers += 1
        self.transfer_s += transfer.seconds
        if self.record:
            start = self.now - transfer.seconds
            self.segments.append(Segment(transfer.lane, transfer.job, "transfer", start, self.now))
        run = self.runs[transfer.job]
        lane = self.lanes.get(transfer.lane)
        if lane is not None and run.epoch == transfer.epoch:
            if lane.waiting == transfer.job:
                lane.waiting = None
                if lane.prefetched == transfer.job:
                    lane.prefetched, lane.prefetch_done = None, False
                self._compute(lane, transfer.job)
            elif transfer.prefetch and lane.prefetched == transfer.job:
                lane.prefetch_done = True
        self._pump(transfer.gpu)

    # -- result ---------------------------------------------------------------------------------
    def _result(self) -> SimResult:
        outcomes = tuple(
            JobOutcome(
                job=r.job.name,
                arrival_s=r.job.arrival_s,
                first_start_s=r.first_start_s if r.first_start_s is not None else r.job.arrival_s,
                finish_s=r.finish_s if r.finish_s is not None else self.now,
                attained_s=r.attained_s,
            )
            for r in self.runs.values()
        )
        makespan = max((o.finish_s for o in outcomes), default=0.0)
        self.committed_integral += self.committed_mib * (makespan - self.last_change_s)
        capacity = self.config.gpus * self.config.gpu_memory_mib
        return SimResult(
            policy=self.policy.value,
            makespan_s=makespan,
            jobs=outcomes,
            gpus=self.config.gpus,
            gpu_busy_s=self.busy_s,
            bytes_moved=self.bytes_moved,
            transfers=self.transfers,
            transfer_s=self.transfer_s,
            lane_memory_utilization=self.committed_integral / (capacity * makespan) if makespan > 0 else 0.0,
            segments=tuple(self.segments),
        )


def _with_priority(job: Job, priority: int) -> Job:
    return replace(job, priority=priority)


def placement_for(spec: PolicySpec, config: SimConfig) -> str:
    if config.placement != "auto":
        return config.placement
    if spec.placement != "auto":
        return spec.placement
    # One iteration at a time per GPU: where a job waits is set by the work ahead of it, not memory.
    return "least-work" if spec.lanes is LaneMode.SINGLE else "gpulane"


def simulate(
    jobs: Sequence[Job],
    policy: SimPolicy,
    config: SimConfig,
    static_order: Sequence[JobId] | None = None,
    spec: PolicySpec | None = None,
) -> SimResult:
    return Simulation(jobs, policy, config, static_order, spec).run()
