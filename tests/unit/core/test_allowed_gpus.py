"""Eligibility (Job.allowed_gpus): placement uses only the GPUs the operator found eligible, on every path."""

from __future__ import annotations

import pytest
from gpulane_core.cluster import ClusterState
from gpulane_core.framework import CycleContext
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.plugins.filters import GpuType
from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle
from gpulane_core.status import Code

GI = 1024


def _state() -> ClusterState:
    return ClusterState.of(
        [Node(NodeName(n), tuple(Gpu(i, f"{n}{i}", "A100", 16 * GI) for i in range(2))) for n in ("a", "b")]
    )


@pytest.mark.parametrize("placement", ["gpulane", "binpack", "spread"])
def test_jobs_land_only_on_allowed_gpus(placement: str) -> None:
    allowed = frozenset({"b1"})
    jobs = [PendingJob(Job(JobId(f"j{i}"), GI, 2 * GI, allowed_gpus=allowed), float(i)) for i in range(4)]
    res = schedule_cycle(_state(), jobs, SchedulerConfig(placement=placement), 10.0)
    assert len(res.placements) == 4
    assert {(p.node, p.first.index) for p in res.placements} == {("b", 1)}


def test_no_eligible_gpu_is_unschedulable_and_says_so() -> None:
    job = Job(JobId("j"), GI, GI, allowed_gpus=frozenset())
    res = schedule_cycle(_state(), [PendingJob(job, 0.0)], SchedulerConfig(), 1.0)
    status = res.unschedulable[JobId("j")]
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.message == "no GPU matches the job's device selectors"


def test_eligibility_is_part_of_the_shape_so_a_failed_job_does_not_hide_another() -> None:
    # Same size: the first (only a0, which is full) fails; the second, allowed elsewhere, must still be tried.
    state = schedule_cycle(_state(), [PendingJob(Job(JobId("fill"), 15 * GI, GI, allowed_gpus=frozenset({"a0"})), 0.0)],
                           SchedulerConfig(), 0.0).state  # fmt: skip
    jobs = [PendingJob(Job(JobId("x"), 2 * GI, GI, allowed_gpus=frozenset({"a0"})), 1.0),
            PendingJob(Job(JobId("y"), 2 * GI, GI, allowed_gpus=frozenset({"b0"})), 2.0)]  # fmt: skip
    res = schedule_cycle(state, jobs, SchedulerConfig(), 3.0)
    assert [(p.job, p.node, p.first.index) for p in res.placements] == [("y", "b", 0)]


def test_the_filter_names_the_ineligible_gpu() -> None:
    state = _state()
    option = next(state.candidates(Job(JobId("k"), GI, GI), NodeName("a")))
    status = GpuType().filter(CycleContext(state), Job(JobId("j"), GI, GI, allowed_gpus=frozenset({"b0"})), option)
    assert not status.ok and status.message == "a/gpu0 matches none of the job's device selectors"
