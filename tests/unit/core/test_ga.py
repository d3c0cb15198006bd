"""The genetic algorithms: seed 000's operators over orders, determinism, optimizing; the joint search."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest
from gpulane_core.ga import (
    STATIC,
    GaConfig,
    Genome,
    JointSpace,
    makespan_lower_bound,
    move_mutation,
    optimize,
    optimize_joint,
    order_crossover,
)
from gpulane_core.model import Job, JobId


def _ids(text: str) -> list[JobId]:
    return [JobId(c) for c in text]


def test_order_crossover_matches_the_seed_example() -> None:
    # Seed 000: P2[1..CR] = [5,6,7,9,10] starts the child; the rest follows P1's order.
    p1 = _ids("123456789T")  # T stands for 10
    p2 = _ids("5679T12348")
    assert order_crossover(p1, p2, 5) == _ids("5679T12348")[:5] + _ids("12348")
    assert order_crossover(p1, p2, 0) == p1
    with pytest.raises(ValueError, match="permutations"):
        order_crossover(_ids("ab"), _ids("ac"), 1)


def test_mutation_moves_exactly_one_job() -> None:
    rng = random.Random(1)
    genes = _ids("abcdef")
    for _ in range(50):
        out = move_mutation(genes, rng)
        assert sorted(out) == sorted(genes) and out != genes
        # Removing the moved job from both leaves the same relative order.
        moved = next(g for g in genes if [x for x in out if x != g] == [x for x in genes if x != g])
        assert moved in genes


def _weighted_completion(order: Sequence[JobId]) -> float:
    # Sum of completion times on one machine: the optimum is shortest-first (known closed form).
    durations = {"a": 5.0, "b": 1.0, "c": 3.0, "d": 2.0, "e": 4.0, "f": 6.0}
    t = total = 0.0
    for j in order:
        t += durations[j]
        total += t
    return total


def test_ga_finds_the_brute_force_optimum_and_is_deterministic() -> None:
    jobs = _ids("abcdef")
    best = min(_weighted_completion(p) for p in itertools.permutations(jobs))
    cfg = GaConfig(population=12, survivors=4, generations=25, seed=7)
    result = optimize(jobs, _weighted_completion, cfg)
    assert result.best_fitness == best == _weighted_completion(_ids("bdceaf"))
    assert list(result.history) == sorted(result.history, reverse=True)  # elitism: never worse
    assert optimize(jobs, _weighted_completion, cfg) == result
    assert result.evaluations < 720  # it did not enumerate every order


def test_seeds_are_kept_and_bad_input_is_named() -> None:
    jobs = _ids("abc")
    result = optimize(jobs, _weighted_completion, GaConfig(generations=0), seeds=[_ids("bca")])
    assert result.best_fitness <= _weighted_completion(_ids("bca"))
    assert GaConfig(population=1, survivors=3).validate() == [
        "population: must be at least 2, got 1",
        "survivors: must be within 1..population (1), got 3",
    ]
    with pytest.raises(ValueError, match="seeds"):
        optimize(jobs, _weighted_completion, seeds=[_ids("ab")])


# ---- the joint search -------------------------------------------------------------------------

SPACE = JointSpace(("single", "concurrent"), ("spread", "gpulane"), ("strict", "rounds"), ("fifo", "srtf", STATIC))


def _joint_fitness(g: Genome) -> float:
    # A made-up landscape: concurrent + gpulane + srtf is best, and the static order counts too.
    score = 10.0 * (g.mode != "concurrent") + 5.0 * (g.placement != "gpulane") + 3.0 * (g.ordering != "srtf")
    return score + _weighted_completion(g.order) / 100


def test_joint_ga_is_never_worse_than_its_best_seed_and_finds_the_optimum_here() -> None:
    order = tuple(_ids("cab"))
    seeds = [Genome("single", "spread", "strict", "fifo", order), Genome("single", "gpulane", "rounds", "srtf", order)]
    result = optimize_joint(SPACE, _joint_fitness, seeds, lower_bound=1.0, config=GaConfig(generations=25, seed=3))
    assert result.seeds_best == min(_joint_fitness(s) for s in seeds)
    assert result.best_fitness <= result.seeds_best
    assert (result.best.mode, result.best.placement, result.best.ordering) == ("concurrent", "gpulane", "srtf")
    assert [b for _, b in result.curve] == sorted((b for _, b in result.curve), reverse=True)  # never worsens
    assert result.gap == pytest.approx(result.best_fitness - 1.0)


def test_joint_ga_stops_at_its_time_budget_on_the_injected_clock() -> None:
    ticks = itertools.count()

    def clock() -> float:  # every reading is one second later
        return float(next(ticks))

    seeds = [Genome("single", "spread", "strict", "fifo", tuple(_ids("abc")))]
    result = optimize_joint(SPACE, _joint_fitness, seeds, 1.0, GaConfig(generations=1000), time_budget_s=30, clock=clock)
    assert result.timed_out and result.curve[-1][0] <= 31 and result.evaluations < 100
    with pytest.raises(ValueError, match="clock: required"):
        optimize_joint(SPACE, _joint_fitness, seeds, 1.0, time_budget_s=5)


def test_makespan_lower_bound_is_the_critical_path_or_the_memory_time() -> None:
    jobs = [Job(JobId("a"), 1_000, 0, arrival_s=5.0, iteration_s=2.0, iterations=10),
            Job(JobId("b"), 8_000, 0, iteration_s=1.0, iterations=10)]  # fmt: skip
    assert makespan_lower_bound(jobs, gpus=1, gpu_memory_mib=100_000) == 25.0  # a: 5 + 20
    # Memory-time: 1,000 MiB x 20 s + 8,000 MiB x 10 s over 4,000 MiB = 25 s after the first arrival.
    assert makespan_lower_bound(jobs, gpus=1, gpu_memory_mib=4_000) == 25.0
    assert makespan_lower_bound(jobs, gpus=1, gpu_memory_mib=2_000) == 50.0
