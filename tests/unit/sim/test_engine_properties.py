"""Properties of the engine over random workloads: no job lost, work conserved, no overlaps, determinism."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from gpulane_core.model import Job, JobClass, JobId
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.policies import SimPolicy
from gpulane_sim.result import SimResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_job = st.tuples(
    st.integers(0, 20),  # arrival
    st.sampled_from([1, 1, 1, 2]),  # gpus
    st.integers(0, 6_000),  # persistent
    st.integers(1, 6_000),  # ephemeral
    st.sampled_from([0.5, 1.0, 2.0]),  # iteration_s
    st.integers(1, 6),  # iterations
    st.integers(0, 2_000),  # working set
    st.booleans(),  # best-effort
)


def _jobs(specs: list[tuple[int, int, int, int, float, int, int, bool]]) -> list[Job]:
    return [
        Job(JobId(f"j{i}"), p, e, gpus=g, arrival_s=float(a), iteration_s=it, iterations=n, working_set_mib=ws,
            job_class=JobClass.BEST_EFFORT if be else JobClass.GUARANTEED)
        for i, (a, g, p, e, it, n, ws, be) in enumerate(specs)
    ]  # fmt: skip


def _no_overlap(intervals: list[tuple[float, float]]) -> bool:
    ordered = sorted(intervals)
    return all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in pairwise(ordered))


def _check(result: SimResult, jobs: list[Job]) -> None:
    by_name = {j.name: j for j in jobs}
    assert sorted(o.job for o in result.jobs) == sorted(by_name)
    per_lane: dict[object, list[tuple[float, float]]] = defaultdict(list)
    per_engine: dict[object, list[tuple[float, float]]] = defaultdict(list)
    computed: dict[JobId, float] = defaultdict(float)
    for seg in result.segments:
        if seg.kind == "compute":
            per_lane[seg.lane].append((seg.start_s, seg.end_s))
            computed[seg.job] += seg.end_s - seg.start_s
        else:
            per_engine[seg.lane[:2]].append((seg.start_s, seg.end_s))
    assert all(_no_overlap(v) for v in per_lane.values()), "a lane ran two iterations at once"
    assert all(_no_overlap(v) for v in per_engine.values()), "a copy engine ran two copies at once"
    for o in result.jobs:
        job = by_name[o.job]
        assert o.finish_s >= o.first_start_s >= job.arrival_s
        # Preempted iterations are redone, so at least the nominal work was computed.
        assert computed[o.job] >= job.estimated_duration_s - 1e-6


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_job, min_size=1, max_size=10),
    st.sampled_from([p for p in SimPolicy if p is not SimPolicy.GA]),
    st.booleans(),
    st.integers(1, 3),
)
def test_random_workloads_finish_without_overlaps(
    specs: list[tuple[int, int, int, int, float, int, int, bool]],
    policy: SimPolicy,
    prefetch: bool,
    gpus: int,
) -> None:
    jobs = [j for j in _jobs(specs) if j.footprint_mib <= 8192 and j.gpus <= gpus]
    if not jobs:
        return
    cfg = SimConfig(gpus=gpus, gpu_memory_mib=8192, prefetch=prefetch, record_segments=True)
    result = simulate(jobs, policy, cfg)
    _check(result, jobs)
    assert simulate(jobs, policy, cfg) == result  # deterministic
