"""Seeded synthetic workloads for benchmarks and tests: Poisson arrivals at a target load.

Job sizes mimic the Salus profiles (peaks 0.7-12 GiB, a quarter persistent), iteration times
0.05-1.5 s and 1-20 iterations, so a trace of N jobs exercises arrivals, departures and turns
without hours of simulated time. The arrival rate is set so the offered GPU work is ``load`` times
what ``gpus`` GPUs can run alone.
"""

from __future__ import annotations

import random

from gpulane_core.model import Job, JobId


def synthetic_jobs(count: int, gpus: int, load: float = 0.8, seed: int = 0) -> list[Job]:
    if count < 1 or gpus < 1 or load <= 0:
        raise ValueError("count, gpus and load must be positive")
    rng = random.Random(seed)
    shapes = []
    for _ in range(count):
        peak = rng.randint(700, 12_000)
        persistent = peak // 4
        iteration_s = round(rng.uniform(0.05, 1.5), 3)
        iterations = rng.randint(1, 20)
        shapes.append((persistent, peak - persistent, iteration_s, iterations))
    mean_work = sum(s[2] * s[3] for s in shapes) / count
    rate = load * gpus / mean_work  # jobs per second
    t = 0.0
    jobs = []
    for k, (p, e, it, n) in enumerate(shapes):
        t += rng.expovariate(rate)
        jobs.append(
            Job(
                JobId(f"s{k:06d}"),
                p,
                e,
                arrival_s=round(t, 3),
                iteration_s=it,
                iterations=n,
                working_set_mib=p,
            )
        )
    return jobs
