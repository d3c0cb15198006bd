"""Run several policies over one workload, including the GA's offline search for the best order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from gpulane_core.ga import GaConfig, GaResult, optimize
from gpulane_core.model import Job, JobId

from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.policies import SimPolicy
from gpulane_sim.result import SimResult

Progress = Callable[[str, float], None]  # (what is running, fraction done 0..1)


def _quiet(_: str, __: float) -> None:
    return None


def ga_search(jobs: Sequence[Job], config: SimConfig, progress: Progress = _quiet) -> GaResult:
    """The order (one turn each per round, by rank) with the smallest simulated makespan."""
    fast = replace(config, record_segments=False)
    total = max(1, config.ga_population * (config.ga_generations + 1))
    evaluated = 0

    def fitness(order: Sequence[JobId]) -> float:
        nonlocal evaluated
        evaluated += 1
        progress("ga search", min(1.0, evaluated / total))
        return simulate(jobs, SimPolicy.GA, fast, order).makespan_s

    arrival = [j.name for j in sorted(jobs, key=lambda j: (j.arrival_s, j.name))]
    shortest = [j.name for j in sorted(jobs, key=lambda j: (j.estimated_duration_s, j.name))]
    cfg = GaConfig(
        population=config.ga_population,
        survivors=config.ga_survivors,
        generations=config.ga_generations,
        seed=config.seed,
    )
    return optimize(arrival, fitness, cfg, seeds=[arrival, shortest])


def _scaled(progress: Progress, index: int, count: int) -> Progress:
    def report(what: str, fraction: float) -> None:
        progress(what, (index + fraction) / count)

    return report


def run_policies(
    jobs: Sequence[Job], policies: Sequence[SimPolicy], config: SimConfig, progress: Progress = _quiet
) -> dict[str, SimResult]:
    results: dict[str, SimResult] = {}
    for i, policy in enumerate(policies):
        progress(policy.value, i / len(policies))
        if policy is SimPolicy.GA:
            best = ga_search(jobs, config, _scaled(progress, i, len(policies)))
            results[policy.value] = simulate(jobs, policy, config, best.best_order)
        else:
            results[policy.value] = simulate(jobs, policy, config)
    progress("done", 1.0)
    return results
