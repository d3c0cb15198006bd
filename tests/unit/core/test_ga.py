"""The genetic algorithm over job orders: seed 000's operators, determinism, and that it optimizes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest
from gpulane_core.ga import GaConfig, move_mutation, optimize, order_crossover
from gpulane_core.model import JobId


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
