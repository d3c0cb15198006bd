"""A time-shared GPU (one iteration at a time) keeps one lane: sum of persistent + largest peak <= C."""

from __future__ import annotations

from gpulane_core.lanes import AdmissionKind, GpuLanes, admit, check_invariant, plan_admission, release
from gpulane_core.model import JobId


def _fill(state: GpuLanes, jobs: list[tuple[str, int, int]]) -> GpuLanes:
    for name, p, e in jobs:
        plan = plan_admission(state, p, e)
        assert plan is not None, name
        state = admit(state, JobId(name), p, e, plan)
    return state


def test_time_shared_gpu_shares_or_grows_its_one_lane_and_admits_more_jobs() -> None:
    jobs = [(f"j{i}", 1_000, 3_000) for i in range(5)]
    concurrent = GpuLanes(16_000)
    admitted = 0
    for name, p, e in jobs:
        plan = plan_admission(concurrent, p, e)
        if plan is None:
            break
        concurrent = admit(concurrent, JobId(name), p, e, plan)
        admitted += 1
    assert admitted == 4  # four lanes of 3 GiB + 4 GiB persistent; a fifth does not fit
    shared = _fill(GpuLanes(16_000, time_shared=True), jobs)
    assert len(shared.lanes) == 1 and shared.lanes[0].size_mib == 3_000
    assert shared.committed_mib == 5 * 1_000 + 3_000 and not check_invariant(shared)
    grown = plan_admission(shared, 500, 6_000)
    assert grown is not None and grown.kind is AdmissionKind.GROW_LANE and grown.lane_size_mib == 6_000
    assert plan_admission(shared, 500, 10_600) is None  # 5.5 GB persistent + a 10.6 GB lane > 16 GB
    # Leaving shrinks the lane to the largest remaining peak; the last one closes it.
    for name, _, _ in jobs[:-1]:
        shared = release(shared, JobId(name))
    assert shared.lanes[0].jobs == (JobId("j4"),) and not check_invariant(shared)
    assert release(shared, JobId("j4")).lanes == ()


def test_invariant_names_a_second_lane_on_a_time_shared_gpu() -> None:
    two = _fill(GpuLanes(16_000), [("a", 100, 1_000), ("b", 100, 1_000)])
    broken = GpuLanes(two.capacity_mib, two.lanes, two.tenants, two.next_lane, time_shared=True)
    assert any("time-shared GPU" in p for p in check_invariant(broken))
