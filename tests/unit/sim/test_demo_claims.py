"""The shipped demo workload shows what the README claims (deterministic: same numbers every run)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from gpulane_core.ga import makespan_lower_bound
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.policies import SimPolicy
from gpulane_sim.result import SimResult
from gpulane_sim.runner import ga_search, simulate_genome
from gpulane_sim.workload import load_workload

CFG = SimConfig(gpus=2, gpu_memory_mib=16 * 1024)


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, bool], SimResult]:
    demo = Path(__file__).resolve().parents[3] / "examples" / "workloads" / "demo.csv"
    jobs = load_workload(demo).jobs
    out: dict[tuple[str, bool], SimResult] = {}
    for prefetch in (True, False):
        cfg = replace(CFG, prefetch=prefetch)
        for policy in SimPolicy:
            if policy is not SimPolicy.GA:
                out[(policy.value, prefetch)] = simulate(jobs, policy, cfg)
    best = ga_search(jobs, CFG)
    out[("ga", True)] = simulate_genome(jobs, best.best, CFG)
    arrival = [j.name for j in sorted(jobs, key=lambda j: (j.arrival_s, j.name))]
    out[("rounds-in-arrival-order", True)] = simulate(jobs, SimPolicy.GA, CFG, arrival)
    return out


def _m(runs: dict[tuple[str, bool], SimResult], policy: str, key: str, prefetch: bool = True) -> float:
    return float(runs[(policy, prefetch)].summary()[key])


def test_srtf_lowers_average_jct_below_fifo(runs: dict[tuple[str, bool], SimResult]) -> None:
    assert _m(runs, "srtf", "avg_jct_s") < _m(runs, "fifo", "avg_jct_s")


def test_pack_makespan_at_or_below_fifo(runs: dict[tuple[str, bool], SimResult]) -> None:
    assert _m(runs, "pack", "makespan_s") <= _m(runs, "fifo", "makespan_s")


@pytest.mark.parametrize("policy", ["fifo", "srtf", "pack", "fair", "weight"])
def test_prefetch_lowers_makespan(runs: dict[tuple[str, bool], SimResult], policy: str) -> None:
    assert _m(runs, policy, "makespan_s", True) < _m(runs, policy, "makespan_s", False)
    # The same bytes (or more, when a prefetch guessed wrong) move either way; they just hide.
    assert _m(runs, policy, "bytes_moved", True) >= _m(runs, policy, "bytes_moved", False) * 0.9


def test_ga_is_no_worse_than_every_heuristic_and_never_below_the_lower_bound(
    runs: dict[tuple[str, bool], SimResult],
) -> None:
    ga = _m(runs, "ga", "makespan_s")
    heuristics = [p.value for p in SimPolicy if p is not SimPolicy.GA]
    assert ga <= min(_m(runs, p, "makespan_s") for p in heuristics)
    assert ga <= _m(runs, "rounds-in-arrival-order", "makespan_s")
    jobs = load_workload(Path(__file__).resolve().parents[3] / "examples" / "workloads" / "demo.csv").jobs
    assert ga >= makespan_lower_bound(jobs, CFG.gpus, CFG.gpu_memory_mib)


def test_every_job_finishes_once_with_its_own_work(runs: dict[tuple[str, bool], SimResult]) -> None:
    for result in runs.values():
        assert len(result.jobs) == 16 and len({o.job for o in result.jobs}) == 16
        for o in result.jobs:
            assert o.finish_s > o.first_start_s >= o.arrival_s
