"""Property: any sequence of arrivals and departures keeps the lane invariant, loses no job and
places none twice, whatever the ordering and placement policies."""

from __future__ import annotations

from dataclasses import replace

from gpulane_core.cluster import ClusterState
from gpulane_core.model import Gpu, Job, JobClass, JobId, Node, NodeName
from gpulane_core.registry import Registry, default_registry
from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_NODES = [
    Node(NodeName("a"), (Gpu(0, "a0", "A100", 16_384), Gpu(1, "a1", "A100", 16_384))),
    Node(NodeName("b"), (Gpu(0, "b0", "T4", 8_192), Gpu(1, "b1", "T4", 8_192, healthy=False))),
]

_job = st.builds(
    lambda p, e, gpus, be, prio, typed: (p, e, gpus, be, prio, typed),
    st.integers(0, 12_000),
    st.integers(1, 9_000),
    st.sampled_from([1, 1, 1, 2, 3]),
    st.booleans(),
    st.integers(0, 3),
    st.sampled_from([frozenset(), frozenset({"T4"}), frozenset({"V100"})]),
)
# An event is either an arrival (a job spec) or a departure of the k-th running job.
_event = st.one_of(_job, st.integers(0, 20))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_event, min_size=1, max_size=30),
    st.sampled_from(["fifo", "srtf", "pack", "fair", "weight"]),
    st.sampled_from(["gpulane", "binpack", "spread"]),
    st.booleans(),
    st.booleans(),
)
def test_random_arrivals_and_departures_keep_every_invariant(
    events: list[object], ordering: str, placement: str, backfill: bool, preemption: bool
) -> None:
    config = SchedulerConfig(ordering=ordering, placement=placement, backfill=backfill, preemption=preemption)
    state = ClusterState.of(_NODES)
    pending: dict[JobId, PendingJob] = {}
    done: set[JobId] = set()
    submitted: set[JobId] = set()
    for t, event in enumerate(events):
        if isinstance(event, tuple):
            p, e, gpus, be, prio, typed = event
            name = JobId(f"j{t}")
            job = Job(
                name,
                p,
                e,
                gpus=gpus,
                priority=prio,
                gpu_types=typed,
                job_class=JobClass.BEST_EFFORT if be else JobClass.GUARANTEED,
                iterations=t + 1,
                working_set_mib=e,
            )
            pending[name] = PendingJob(job, float(t))
            submitted.add(name)
        else:
            running = sorted(state.placements)
            if running:
                leaving = running[int(event) % len(running)]
                state = state.unreserve(leaving)
                done.add(leaving)
        before = set(state.placements)
        result = schedule_cycle(state, list(pending.values()), config, float(t))
        assert result.state.check_invariants() == []
        placed = [p.job for p in result.placements]
        assert len(placed) == len(set(placed)), "a job was placed twice in one cycle"
        assert not set(placed) & before, "a running job was placed again"
        victims = {p.victim for p in result.preemptions}
        assert victims <= before
        for v in victims:
            assert state.jobs[v].job_class is JobClass.BEST_EFFORT
        assert set(result.queue) == set(pending) - set(placed)
        assert set(result.unschedulable) == set(result.queue)
        for v in victims:  # the caller re-queues victims, as the simulator does
            pending[v] = PendingJob(state.jobs[v], float(t))
        for j in placed:
            pending.pop(j)
        state = result.state
        # Nothing lost: every submitted job is running, pending or done, exactly once.
        running_now = set(state.placements)
        assert running_now | set(pending) | done == submitted
        assert not (running_now & set(pending)) and not (running_now & done) and not (set(pending) & done)


_shape = st.tuples(st.integers(0, 6_000), st.integers(1, 6_000), st.sampled_from([1, 1, 1, 2, 4]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_shape, min_size=1, max_size=25),
    st.integers(1, 6),
    st.sampled_from(["gpulane", "binpack", "spread"]),
)
def test_scoring_one_representative_of_identical_gpus_changes_nothing(
    shapes: list[tuple[int, int, int]], nodes: int, placement: str
) -> None:
    """The symmetric shortcut (one empty node per shape, one empty GPU per class) is exact."""
    cluster = ClusterState.of(
        [
            Node(NodeName(f"n{i}"), tuple(Gpu(g, f"n{i}-{g}", "A100", 16_384) for g in range(4)))
            for i in range(nodes)
        ]
    )
    pending = [
        PendingJob(Job(JobId(f"j{k:02d}"), p, e, gpus=g), float(k)) for k, (p, e, g) in enumerate(shapes)
    ]
    full = default_registry()
    base = full.profile(placement)
    plain = Registry({placement: lambda: replace(base, symmetric=False)})
    config = SchedulerConfig(placement=placement, percentage_of_nodes_to_score=100)
    fast = schedule_cycle(cluster, pending, config, 0.0, registry=full)
    slow = schedule_cycle(cluster, pending, config, 0.0, registry=plain)
    assert fast.placements == slow.placements
    assert fast.queue == slow.queue
