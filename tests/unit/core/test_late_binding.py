"""JoinWhenFirst (placement ``gpulane-late``): a job joins a busy lane only when it would take the turns."""

from __future__ import annotations

from gpulane_core.cluster import ClusterState
from gpulane_core.framework import CycleContext
from gpulane_core.lanes import AdmissionKind
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.plugins.late_binding import JoinWhenFirst
from gpulane_core.registry import default_registry
from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle

NODE = NodeName("n")


def _job(name: str, seconds: float, persistent: int = 1_000, ephemeral: int = 6_000) -> Job:
    return Job(JobId(name), persistent, ephemeral, iteration_s=seconds, iterations=1)


def _one_gpu(memory_mib: int = 16_384) -> ClusterState:
    return ClusterState.of([Node(NODE, (Gpu(0, "GPU-0", "fake", memory_mib),))])


def _with(state: ClusterState, job: Job) -> ClusterState:
    return state.reserve(job, next(iter(state.candidates(job, NODE))))


def _verdicts(state: ClusterState, job: Job) -> dict[AdmissionKind, bool]:
    ctx = CycleContext(state)
    return {o.first.plan.kind: JoinWhenFirst().filter(ctx, job, o).ok for o in state.candidates(job, NODE)}


def test_joining_needs_less_than_every_members_expected_remaining_time() -> None:
    # 1 GiB persistent + a 6 GiB lane: the second job of this size can only share the lane on 12 GiB.
    state = _with(_one_gpu(12_288), _job("member", 60.0))
    assert _verdicts(state, _job("short", 29.0)) == {AdmissionKind.SHARE_LANE: True}
    # 30 s is not less than half of 60 s: the member may have that little left and keep the turns.
    assert _verdicts(state, _job("half", 30.0)) == {AdmissionKind.SHARE_LANE: False}
    assert _verdicts(state, _job("long", 100.0)) == {AdmissionKind.SHARE_LANE: False}
    # No estimate on either side: nothing to rank by, the filter stays out of the way.
    assert _verdicts(state, _job("unknown", 0.0)) == {AdmissionKind.SHARE_LANE: True}
    blind = _with(_one_gpu(12_288), _job("member", 0.0))
    assert _verdicts(blind, _job("long", 100.0)) == {AdmissionKind.SHARE_LANE: True}


def test_a_new_lane_always_passes() -> None:
    state = _with(_one_gpu(), _job("member", 10.0, ephemeral=2_000))
    assert _verdicts(state, _job("long", 100.0, ephemeral=2_000)) == {AdmissionKind.NEW_LANE: True}


def test_gpulane_late_keeps_a_job_queued_where_gpulane_binds_it_to_wait() -> None:
    # Room for two more jobs on the GPU, but only in the member's lane (no new 6 GiB lane fits).
    state = _with(_one_gpu(12_288), _job("member", 60.0))
    long, short = _job("long", 100.0), _job("short", 5.0)
    pending = [PendingJob(long, 0.0), PendingJob(short, 0.0)]
    plain = schedule_cycle(state, pending, SchedulerConfig(ordering="gpulane", placement="gpulane"), 0.0)
    late = schedule_cycle(state, pending, SchedulerConfig(ordering="gpulane", placement="gpulane-late"), 0.0)
    # Both share the lane under gpulane; long would only wait there behind the member, so under
    # gpulane-late it stays queued (holding no memory) with the filter's reason; short takes the turns.
    assert [(p.job, p.first.plan.kind) for p in plain.placements] == [
        ("short", AdmissionKind.SHARE_LANE), ("long", AdmissionKind.SHARE_LANE)
    ]
    assert [p.job for p in late.placements] == ["short"] and late.queue == ("long",)
    assert "JoinWhenFirst" in str(late.unschedulable[JobId("long")])


def test_the_profile_is_gpulane_plus_the_filter() -> None:
    registry = default_registry()
    late, plain = registry.profile("gpulane-late"), registry.profile("gpulane")
    assert late.scores == plain.scores
    assert [f.name for f in late.filters] == [*(f.name for f in plain.filters), "JoinWhenFirst"]
