"""A genetic algorithm over job orders (seed 000): the offline optimum the weight heuristic is judged by.

The fitness of an order is injected (the simulator's makespan, say), so the core never imports the
simulator. Lower fitness is better. Each generation keeps the best ``survivors`` orders (truncation
selection, which keeps the best found so far) and breeds children by *order crossover* (child = the
first CR genes of parent 2, the remaining genes in parent-1 order) and *order-preserving mutation*
(move one job to another position). A seeded ``random.Random`` on the call makes runs repeatable, and
each distinct order is evaluated once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpulane_core.model import JobId

Fitness = Callable[[Sequence[JobId]], float]


@dataclass(frozen=True, slots=True)
class GaConfig:
    population: int = 16
    survivors: int = 6
    generations: int = 20
    mutation_rate: float = 0.4
    seed: int = 0

    def validate(self) -> list[str]:
        problems: list[str] = []
        if self.population < 2:
            problems.append(f"population: must be at least 2, got {self.population}")
        if not 1 <= self.survivors <= self.population:
            problems.append(
                f"survivors: must be within 1..population ({self.population}), got {self.survivors}"
            )
        if self.generations < 0:
            problems.append(f"generations: must not be negative, got {self.generations}")
        if not 0.0 <= self.mutation_rate <= 1.0:
            problems.append(f"mutation_rate: must be within 0..1, got {self.mutation_rate}")
        return problems


@dataclass(frozen=True, slots=True)
class GaResult:
    best_order: tuple[JobId, ...]
    best_fitness: float
    history: tuple[float, ...]  # best fitness after each generation (index 0: initial population)
    evaluations: int  # distinct orders simulated


def order_crossover(parent1: Sequence[JobId], parent2: Sequence[JobId], cut: int) -> list[JobId]:
    """Seed 000's crossover: parent2[:cut], then the missing genes in parent-1 order."""
    if sorted(parent1) != sorted(parent2):
        raise ValueError("parents must be permutations of the same jobs")
    if not 0 <= cut <= len(parent2):
        raise ValueError(f"cut: must be within 0..{len(parent2)}, got {cut}")
    head = list(parent2[:cut])
    taken = set(head)
    return head + [g for g in parent1 if g not in taken]


def move_mutation(genes: Sequence[JobId], rng: random.Random) -> list[JobId]:
    """Move one job to a random other position; the relative order of the rest is preserved."""
    out = list(genes)
    if len(out) < 2:
        return out
    src = rng.randrange(len(out))
    gene = out.pop(src)
    dst = rng.randrange(len(out) + 1)
    while dst == src:
        dst = rng.randrange(len(out) + 1)
    out.insert(dst, gene)
    return out


def optimize(
    jobs: Sequence[JobId],
    fitness: Fitness,
    config: GaConfig = GaConfig(),
    seeds: Sequence[Sequence[JobId]] = (),
) -> GaResult:
    """The best order found; ``seeds`` (e.g. FIFO or shortest-first orders) join the first population."""
    problems = config.validate()
    if problems:
        raise ValueError("ga: " + "; ".join(problems))
    genes = list(jobs)
    if len(set(genes)) != len(genes):
        raise ValueError("jobs: a job appears more than once")
    for s in seeds:
        if sorted(s) != sorted(genes):
            raise ValueError("seeds: every seed must be a permutation of jobs")
    rng = random.Random(config.seed)
    cache: dict[tuple[JobId, ...], float] = {}

    def fit(order: Sequence[JobId]) -> float:
        key = tuple(order)
        if key not in cache:
            cache[key] = fitness(key)
        return cache[key]

    population: list[list[JobId]] = [list(s) for s in seeds][: config.population]
    if not population:
        population.append(list(genes))
    while len(population) < config.population:
        shuffled = list(genes)
        rng.shuffle(shuffled)
        population.append(shuffled)

    def rank(pop: list[list[JobId]]) -> list[list[JobId]]:
        unique = {tuple(p): p for p in pop}
        return sorted(unique.values(), key=lambda p: (fit(p), tuple(p)))

    ranked = rank(population)
    history = [fit(ranked[0])]
    for _ in range(config.generations):
        parents = ranked[: config.survivors]
        children: list[list[JobId]] = [list(p) for p in parents]
        attempts = 0
        while len(children) < config.population and attempts < config.population * 4:
            attempts += 1
            p1, p2 = rng.choice(parents), rng.choice(parents)
            child = order_crossover(p1, p2, rng.randrange(len(genes) + 1))
            if rng.random() < config.mutation_rate or child in children:
                child = move_mutation(child, rng)
            children.append(child)
        ranked = rank(children)
        history.append(fit(ranked[0]))
    best = ranked[0]
    return GaResult(tuple(best), fit(best), tuple(history), len(cache))
