"""An approximation of Salus' long-running trace (Salus paper §6; papers.md §1.3).

The trace file itself is not public. What is: its jobs are the Salus benchmark workloads (the 99
rows of ``tests/workloads.csv``: 11 CNN models x 3 batch sizes x 1, 5 and 10 minute runs), jobs are
submitted once the wall clock passes their submit time, the run length is given to SRTF as its
estimate, and one 14 GiB GPU serves them. So the approximation takes every workload row once, in a
seeded random order, with Poisson submit times whose mean gap spreads the submissions over
``span_fraction`` of the total solo work (a backlog, as the paper's queueing times show), on one GPU.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from gpulane_core.model import Job


def long_running_trace(workloads: Sequence[Job], seed: int = 0, span_fraction: float = 0.25) -> list[Job]:
    if not workloads:
        raise ValueError("workloads: need at least one job")
    if not span_fraction > 0:
        raise ValueError(f"span_fraction: must be positive, got {span_fraction}")
    rng = random.Random(seed)
    jobs = list(workloads)
    rng.shuffle(jobs)
    work = sum(j.estimated_duration_s for j in jobs)
    gap = span_fraction * work / len(jobs)
    t, out = 0.0, []
    for job in jobs:
        out.append(replace(job, arrival_s=round(t, 3)))
        t += rng.expovariate(1.0 / gap)
    return out
