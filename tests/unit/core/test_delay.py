"""WaitForLeastWork (in ``least-work``): wait for the least-work GPU rather than bind where stranded."""

from __future__ import annotations

from gpulane_core.cluster import ClusterState
from gpulane_core.framework import CycleContext
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.plugins.delay import WaitForLeastWork
from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle

NODE = NodeName("n")


def _job(name: str, seconds: float, persistent: int = 2_000, ephemeral: int = 2_000) -> Job:
    return Job(JobId(name), persistent, ephemeral, iteration_s=seconds, iterations=1)


def _place(state: ClusterState, job: Job, index: int) -> ClusterState:
    return state.reserve(job, next(o for o in state.candidates(job, NODE) if o.first.index == index))


def _state() -> ClusterState:
    # GPU 0: a 10 s job that leaves no room for a 2 + 2 GiB job; GPU 1: a 200 s job, room to spare.
    gpus = tuple(Gpu(i, f"GPU-{i}", "fake", 16_384) for i in range(2))
    state = ClusterState.of([Node(NODE, gpus)], time_shared=True)
    state = _place(state, _job("small-but-big", 10.0, persistent=13_000), 0)
    return _place(state, _job("long", 200.0, persistent=1_000), 1)


def test_a_job_waits_for_the_full_gpu_where_it_would_wait_far_less() -> None:
    state = _state()
    mid = _job("mid", 50.0)
    assert [o.first.index for o in state.candidates(mid, NODE)] == [1]  # only GPU 1 has room now
    option = next(iter(state.candidates(mid, NODE)))
    # GPU 1: 50 s behind nobody but delaying the 200 s job (100 s); GPU 0: 10 + 50 = 60 s, over the slack.
    status = WaitForLeastWork().filter(CycleContext(state), mid, option)
    assert not status.ok and "WaitForLeastWork" in str(status)
    # Within the slack (a quarter of the job's work) it binds: a 5 s job adds 10 s on either GPU.
    short = _job("short", 5.0)
    assert WaitForLeastWork().filter(CycleContext(state), short, next(iter(state.candidates(short, NODE)))).ok
    # No estimate: nothing to compare, it passes.
    blind = _job("blind", 0.0)
    assert WaitForLeastWork().filter(CycleContext(state), blind, next(iter(state.candidates(blind, NODE)))).ok


def test_least_work_keeps_it_queued_with_the_reason_and_no_preemption() -> None:
    state = _state()
    pending = [PendingJob(_job("mid", 50.0), 0.0), PendingJob(_job("short", 5.0), 0.0)]
    result = schedule_cycle(state, pending, SchedulerConfig(ordering="fifo", placement="least-work"), 0.0)
    assert [(p.job, p.first.index) for p in result.placements] == [("short", 1)]
    assert result.queue == ("mid",) and result.preemptions == ()
    assert "WaitForLeastWork" in str(result.unschedulable[JobId("mid")])
    spread = schedule_cycle(state, pending, SchedulerConfig(ordering="fifo", placement="spread"), 0.0)
    assert {p.job for p in spread.placements} == {"mid", "short"}  # without the filter, mid binds to GPU 1
