"""Genetic algorithms: over job orders (seed 000), and over whole schedule configurations.

``optimize_joint`` searches the joint space (lane execution mode, placement, turn discipline,
ordering policy or a static order), seeded with every heuristic's genome so it is never worse than
the best heuristic, time-bounded, and reports its gap to :func:`makespan_lower_bound`.

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
from dataclasses import dataclass, replace

from gpulane_core.model import Job, JobId

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


# ---- the joint search: placement, lane mode, turn discipline and order --------------------------


@dataclass(frozen=True, slots=True)
class Genome:
    """One schedule configuration: how lanes run, where jobs go, how turns pass, in which order.

    ``ordering`` names an ordering policy, or ``STATIC`` to use ``order`` (a priority per job, for the
    queue and for turns). Every heuristic is one genome, so seeding with them bounds the result.
    """

    mode: str  # lane execution mode, e.g. "concurrent" or "time-shared"
    placement: str
    discipline: str
    ordering: str
    order: tuple[JobId, ...]


STATIC = "static"


@dataclass(frozen=True, slots=True)
class JointSpace:
    modes: tuple[str, ...]
    placements: tuple[str, ...]
    disciplines: tuple[str, ...]
    orderings: tuple[str, ...]  # include STATIC to search orders too


@dataclass(frozen=True, slots=True)
class JointResult:
    best: Genome
    best_fitness: float
    seeds_best: float  # the best seed's fitness (the best heuristic when seeded with all of them)
    lower_bound: float
    curve: tuple[tuple[float, float], ...]  # (seconds since start, best fitness) after each generation
    evaluations: int
    timed_out: bool

    @property
    def gap(self) -> float:
        """Relative distance to the lower bound (0 = provably optimal)."""
        return self.best_fitness / self.lower_bound - 1.0 if self.lower_bound > 0 else 0.0


def makespan_lower_bound(jobs: Sequence[Job], gpus: int, gpu_memory_mib: int) -> float:
    """No schedule ends before (a) a job's arrival plus its own iterations back to back, nor (b) the
    first arrival plus the persistent memory-time all jobs need over the cluster's memory (every
    job's persistent memory is resident for at least its run time)."""
    if not jobs:
        return 0.0
    critical = max(j.arrival_s + j.estimated_duration_s for j in jobs)
    memory_time = sum(j.persistent_mib * j.gpus * j.estimated_duration_s for j in jobs)
    return max(critical, min(j.arrival_s for j in jobs) + memory_time / (gpus * gpu_memory_mib))


def _mutate(genome: Genome, space: JointSpace, rng: random.Random) -> Genome:
    gene = rng.randrange(5)
    if gene == 0:
        return replace(genome, mode=rng.choice(space.modes))
    if gene == 1:
        return replace(genome, placement=rng.choice(space.placements))
    if gene == 2:
        return replace(genome, discipline=rng.choice(space.disciplines))
    if gene == 3:
        return replace(genome, ordering=rng.choice(space.orderings))
    return replace(genome, ordering=STATIC, order=tuple(move_mutation(genome.order, rng)))


def _cross(a: Genome, b: Genome, rng: random.Random) -> Genome:
    order = order_crossover(a.order, b.order, rng.randrange(len(a.order) + 1))
    pick = [rng.random() < 0.5 for _ in range(4)]
    return Genome(
        a.mode if pick[0] else b.mode,
        a.placement if pick[1] else b.placement,
        a.discipline if pick[2] else b.discipline,
        a.ordering if pick[3] else b.ordering,
        tuple(order),
    )


def optimize_joint(
    space: JointSpace,
    fitness: Callable[[Genome], float],
    seeds: Sequence[Genome],
    lower_bound: float,
    config: GaConfig = GaConfig(),
    time_budget_s: float = 0.0,
    clock: Callable[[], float] | None = None,
) -> JointResult:
    """Truncation-selection GA over genomes; the seeds start the population and, kept by elitism,
    bound the result. Stops after ``config.generations`` or once ``time_budget_s`` (> 0) is spent,
    read from the injected ``clock`` (seconds; required with a budget)."""
    problems = config.validate()
    if not seeds:
        problems.append("seeds: need at least one genome")
    if time_budget_s < 0:
        problems.append(f"time_budget_s: must not be negative, got {time_budget_s}")
    if time_budget_s > 0 and clock is None:
        problems.append("clock: required with a time budget")
    if problems:
        raise ValueError("ga: " + "; ".join(problems))
    rng = random.Random(config.seed)
    cache: dict[Genome, float] = {}
    now = clock or (lambda: 0.0)
    started = now()

    def fit(genome: Genome) -> float:
        if genome not in cache:
            cache[genome] = fitness(genome)
        return cache[genome]

    def over() -> bool:
        return time_budget_s > 0 and now() - started >= time_budget_s

    ranked = sorted(dict.fromkeys(seeds), key=lambda g: (fit(g), repr(g)))
    seeds_best = fit(ranked[0])
    curve = [(now() - started, seeds_best)]
    timed_out = False
    for _ in range(config.generations):
        if over():
            timed_out = True
            break
        parents = ranked[: config.survivors]
        children = list(parents)
        attempts = 0
        while len(children) < config.population and attempts < config.population * 4 and not over():
            attempts += 1
            child = _cross(rng.choice(parents), rng.choice(parents), rng)
            if rng.random() < config.mutation_rate or child in children:
                child = _mutate(child, space, rng)
            if child not in children:
                fit(child)
                children.append(child)
        ranked = sorted(children, key=lambda g: (fit(g), repr(g)))
        curve.append((now() - started, fit(ranked[0])))
    return JointResult(ranked[0], fit(ranked[0]), seeds_best, lower_bound, tuple(curve), len(cache), timed_out)
