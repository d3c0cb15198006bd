"""The Salus long-running-trace approximation: every workload once, seeded order, Poisson submissions."""

from __future__ import annotations

import pytest
from gpulane_core.model import Job, JobId
from gpulane_sim.salus_trace import long_running_trace

WORK = [Job(JobId(f"w{i}"), 100, 100, iteration_s=1.0, iterations=10 * (i + 1)) for i in range(30)]


def test_every_workload_once_in_a_seeded_order_submitted_over_the_span() -> None:
    trace = long_running_trace(WORK, seed=1, span_fraction=0.5)
    assert sorted(j.name for j in trace) == sorted(j.name for j in WORK)
    assert [j.name for j in trace] != [j.name for j in WORK]  # shuffled
    assert trace == long_running_trace(WORK, seed=1, span_fraction=0.5)  # deterministic
    arrivals = [j.arrival_s for j in trace]
    assert arrivals == sorted(arrivals) and arrivals[0] == 0.0
    total = sum(j.estimated_duration_s for j in WORK)
    assert 0.2 * total < arrivals[-1] < 1.0 * total  # about half the work, Poisson noise aside
    with pytest.raises(ValueError, match="span_fraction"):
        long_running_trace(WORK, span_fraction=0)
