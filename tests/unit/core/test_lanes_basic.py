"""Hand-checked cases of the Salus lane algorithm (seed 001, Algorithm 1)."""

from __future__ import annotations

from gpulane_core.lanes import (
    AdmissionKind,
    GpuLanes,
    admit,
    assert_invariant,
    plan_admission,
    plan_exclusive,
    release,
)
from gpulane_core.model import JobId


def _add(state: GpuLanes, job: str, p: int, e: int) -> GpuLanes:
    plan = plan_admission(state, p, e)
    assert plan is not None, f"{job} should fit"
    new = admit(state, JobId(job), p, e, plan)
    assert_invariant(new)
    return new


def test_new_lane_then_share_then_grow_then_refuse() -> None:
    gpu = GpuLanes(capacity_mib=16_000)
    gpu = _add(gpu, "a", 2_000, 6_000)  # 2000 + 6000 = 8000: new lane-0
    gpu = _add(gpu, "b", 1_000, 5_000)  # 3000 + 6000 + 5000 = 14000: new lane-1
    assert [lane.size_mib for lane in gpu.lanes] == [6_000, 5_000]
    # c: P=1000, E=4000: a new lane needs 3000+1000+11000+4000 = 19000 > 16000; share lane-1 (best fit).
    plan = plan_admission(gpu, 1_000, 4_000)
    assert plan is not None and plan.kind is AdmissionKind.SHARE_LANE and plan.lane == "lane-1"
    gpu = admit(gpu, JobId("c"), 1_000, 4_000, plan)
    # d: P=500, E=6600: no lane >= 6600; growing lane-1 (5000): 4000+500+11000-5000+6600 = 17100 > 16000;
    # growing lane-0 (6000): 4000+500+11000-6000+6600 = 16100 > 16000 -> not placeable.
    assert plan_admission(gpu, 500, 6_600) is None
    # e: P=0, E=6400: growing lane-1: 4000+11000-5000+6400 = 16400 > 16000; lane-0: 4000+11000-6000+6400 = 15400.
    plan = plan_admission(gpu, 0, 6_400)
    assert plan is not None and plan.kind is AdmissionKind.GROW_LANE and plan.lane == "lane-0"
    gpu = admit(gpu, JobId("e"), 0, 6_400, plan)
    assert gpu.lane("lane-0").size_mib == 6_400
    assert gpu.committed_mib == 4_000 + 6_400 + 5_000


def test_release_shrinks_then_closes_lane_and_is_idempotent() -> None:
    gpu = GpuLanes(capacity_mib=10_000)
    gpu = _add(gpu, "a", 1_000, 3_000)
    gpu = _add(gpu, "b", 1_000, 4_000)
    plan = plan_admission(gpu, 500, 3_500)
    assert plan is not None and plan.kind is AdmissionKind.SHARE_LANE  # shares lane-1 (4000 >= 3500)
    gpu = admit(gpu, JobId("c"), 500, 3_500, plan)
    gpu = release(gpu, JobId("b"))
    assert_invariant(gpu)
    assert gpu.lane("lane-1").size_mib == 3_500
    gpu = release(release(gpu, JobId("c")), JobId("c"))
    assert [lane.id for lane in gpu.lanes] == ["lane-0"]
    assert gpu.committed_mib == 4_000


def test_exclusive_gpu_blocks_sharing() -> None:
    gpu = GpuLanes(capacity_mib=8_000)
    plan = plan_exclusive(gpu, 2_000, 3_000)
    assert plan is not None
    gpu = admit(gpu, JobId("big"), 2_000, 3_000, plan)
    assert_invariant(gpu)
    assert plan_admission(gpu, 0, 1) is None
    assert plan_exclusive(gpu, 0, 1) is None
    assert release(gpu, JobId("big")).is_empty
