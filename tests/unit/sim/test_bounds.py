"""The avg-JCT lower bound: exact on small cases, and no one-lane policy ever beats it."""

from __future__ import annotations

import pytest
from gpulane_core.model import Job, JobId
from gpulane_sim.bounds import avg_jct_lower_bound, srpt_total_flow_s
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.policies import SimPolicy
from hypothesis import given, settings
from hypothesis import strategies as st


def _job(name: str, arrival: float, seconds: float, gpus: int = 1) -> Job:
    return Job(JobId(name), 1_000, 1_000, gpus=gpus, arrival_s=arrival, iteration_s=seconds, iterations=1)


def test_one_job_alone_is_its_own_length() -> None:
    assert avg_jct_lower_bound([_job("a", 5.0, 3.0)], gpus=4) == pytest.approx(3.0)


def test_srpt_runs_the_short_job_first() -> None:
    jobs = [_job("long", 0.0, 3.0), _job("short", 0.0, 1.0)]
    assert srpt_total_flow_s(jobs, 1.0) == pytest.approx(1.0 + 4.0)
    # Two GPUs as one machine twice as fast: 0.5 and 2.0; but each job alone takes 1 and 3.
    assert srpt_total_flow_s(jobs, 2.0) == pytest.approx(0.5 + 2.0)
    assert avg_jct_lower_bound(jobs, gpus=2) == pytest.approx(2.0)


def test_srpt_preempts_for_a_shorter_arrival() -> None:
    jobs = [_job("long", 0.0, 10.0), _job("short", 2.0, 1.0)]
    # short runs 2..3, long finishes at 11.
    assert srpt_total_flow_s(jobs, 1.0) == pytest.approx(11.0 + 1.0)


def test_a_multi_gpu_job_counts_its_gpu_work() -> None:
    assert srpt_total_flow_s([_job("wide", 0.0, 2.0, gpus=2)], 1.0) == pytest.approx(4.0)


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="gpus"):
        avg_jct_lower_bound([_job("a", 0.0, 1.0)], gpus=0)
    with pytest.raises(ValueError, match="speed"):
        srpt_total_flow_s([], 0.0)


_jobs = st.lists(
    st.tuples(
        st.integers(0, 20),  # arrival
        st.integers(100, 6_000),  # persistent
        st.integers(100, 8_000),  # ephemeral
        st.sampled_from([0.5, 1.0, 2.0]),  # iteration_s
        st.integers(1, 8),  # iterations
    ),
    min_size=1,
    max_size=10,
)
_ONE_LANE = (SimPolicy.FIFO, SimPolicy.SRTF, SimPolicy.SJF, SimPolicy.FAIR, SimPolicy.WEIGHT)


@settings(max_examples=40, deadline=None)
@given(_jobs, st.integers(1, 3), st.sampled_from(_ONE_LANE))
def test_no_one_lane_policy_beats_the_bound(raw: list[tuple[int, int, int, float, int]], gpus: int, policy: SimPolicy) -> None:
    jobs = [
        Job(JobId(f"j{i}"), p, e, arrival_s=float(a), iteration_s=s, iterations=n)
        for i, (a, p, e, s, n) in enumerate(raw)
    ]
    result = simulate(jobs, policy, SimConfig(gpus=gpus, gpu_memory_mib=16_384))
    assert result.summary()["avg_jct_s"] >= avg_jct_lower_bound(jobs, gpus) - 1e-9
