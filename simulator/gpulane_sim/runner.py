"""Run several policies over one workload, including the GA's offline search of the joint space."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from gpulane_core.ga import (
    STATIC,
    GaConfig,
    Genome,
    JointResult,
    JointSpace,
    makespan_lower_bound,
    optimize_joint,
)
from gpulane_core.model import Job, JobId
from gpulane_core.ordering import OrderingPolicy
from gpulane_core.turns import Discipline

from gpulane_sim.config import SimConfig
from gpulane_sim.engine import placement_for, simulate
from gpulane_sim.policies import POLICIES, LaneMode, PolicySpec, SimPolicy
from gpulane_sim.result import SimResult

Progress = Callable[[str, float], None]  # (what is running, fraction done 0..1)


def _quiet(_: str, __: float) -> None:
    return None


def policy_genome(policy: SimPolicy, jobs: Sequence[Job], config: SimConfig) -> Genome:
    """A heuristic policy as a point of the GA's joint space."""
    spec = POLICIES[policy]
    arrival = tuple(j.name for j in sorted(jobs, key=lambda j: (j.arrival_s, j.name)))
    ordering = spec.ordering.value if spec.ordering is not None else STATIC
    return Genome(spec.lanes.value, placement_for(spec, config), spec.discipline.value, ordering, arrival)


def genome_run(genome: Genome, config: SimConfig) -> tuple[PolicySpec, SimConfig, tuple[JobId, ...] | None]:
    """What the simulator runs for ``genome``: the policy spec, the config, the static order if any."""
    ordering = None if genome.ordering == STATIC else OrderingPolicy(genome.ordering)
    spec = PolicySpec(ordering, Discipline(genome.discipline), LaneMode(genome.mode))
    static = genome.order if ordering is None else None
    return spec, replace(config, placement=genome.placement, record_segments=False), static


def simulate_genome(jobs: Sequence[Job], genome: Genome, config: SimConfig) -> SimResult:
    spec, cfg, static = genome_run(genome, config)
    return simulate(jobs, SimPolicy.GA, replace(cfg, record_segments=config.record_segments), static, spec)


def ga_search(
    jobs: Sequence[Job], config: SimConfig, progress: Progress = _quiet, clock: Callable[[], float] = time.monotonic
) -> JointResult:
    """The configuration with the smallest simulated makespan over the joint space (placement, lane
    mode, discipline, ordering or a static order), seeded with every heuristic policy."""
    total = max(1, config.ga_population * (config.ga_generations + 1))
    evaluated = 0

    def fitness(genome: Genome) -> float:
        nonlocal evaluated
        evaluated += 1
        progress("ga search", min(1.0, evaluated / total))
        return simulate_genome(jobs, genome, replace(config, record_segments=False)).makespan_s

    heuristics = [policy_genome(p, jobs, config) for p in SimPolicy if p is not SimPolicy.GA]
    shortest = tuple(j.name for j in sorted(jobs, key=lambda j: (j.estimated_duration_s, j.name)))
    arrival = heuristics[0].order
    static = [
        Genome(mode.value, placement, Discipline.ROUNDS.value, STATIC, order)
        for order in (arrival, shortest)
        for mode, placement in ((LaneMode.SINGLE, "least-work"), (LaneMode.CONCURRENT, "gpulane"))
    ]
    space = JointSpace(
        modes=tuple(m.value for m in LaneMode),
        placements=("gpulane", "binpack", "spread", "least-work"),
        disciplines=tuple(d.value for d in Discipline),
        orderings=(*(o.value for o in OrderingPolicy), STATIC),
    )
    cfg = GaConfig(
        population=config.ga_population,
        survivors=config.ga_survivors,
        generations=config.ga_generations,
        seed=config.seed,
    )
    bound = makespan_lower_bound(jobs, config.gpus, config.gpu_memory_mib)
    return optimize_joint(space, fitness, [*heuristics, *static], bound, cfg, config.ga_time_budget_s, clock)


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
            results[policy.value] = simulate_genome(jobs, best.best, config)
        else:
            results[policy.value] = simulate(jobs, policy, config)
    progress("done", 1.0)
    return results
