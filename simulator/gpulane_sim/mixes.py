"""Generated workload mixes for policy comparisons: heterogeneous job profiles, Poisson or bursty arrivals.

A mix draws each job from a list of *profiles* (memory split and iteration time of a measured model,
e.g. the Salus-derived rows of ``examples/workloads/demo.csv``) and gives it a run length drawn from
``lengths_s`` (Salus' long-running trace mixes 1, 5 and 10 minute jobs; the default here is a tenth of
that, so a mix simulates in well under a second). Arrivals are

* ``poisson``: exponential gaps at a rate that offers ``load`` times what ``gpus`` GPUs run alone;
* ``bursty``: groups of ``burst`` jobs arriving at the same instant, groups at Poisson gaps with the
  same offered load (a hyper-parameter sweep or a batch submission).

Everything is drawn from one ``random.Random(seed)``: a mix is a pure function of its spec.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpulane_core.model import Job, JobId

ARRIVALS = ("poisson", "bursty")


@dataclass(frozen=True, slots=True)
class MixSpec:
    jobs: int = 24
    gpus: int = 2
    arrivals: str = "bursty"
    load: float = 1.0  # offered GPU work over what the GPUs run alone, over the arrival span
    burst: int = 8  # jobs per burst (bursty arrivals)
    lengths_s: tuple[float, ...] = (6.0, 30.0, 60.0)  # run lengths (s of GPU work when alone)
    seed: int = 0

    def validate(self) -> list[str]:
        problems: list[str] = []
        if self.jobs < 1:
            problems.append(f"jobs: must be at least 1, got {self.jobs}")
        if self.gpus < 1:
            problems.append(f"gpus: must be at least 1, got {self.gpus}")
        if self.arrivals not in ARRIVALS:
            problems.append(f"arrivals: must be one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")
        if self.load <= 0:
            problems.append(f"load: must be positive, got {self.load}")
        if self.burst < 1:
            problems.append(f"burst: must be at least 1, got {self.burst}")
        if not self.lengths_s or min(self.lengths_s) <= 0:
            problems.append(f"lengths_s: need at least one positive length, got {self.lengths_s}")
        return problems


def generate_mix(profiles: Sequence[Job], spec: MixSpec) -> list[Job]:
    """``spec.jobs`` jobs named ``m000``, ``m001``, ...; each a profile with a drawn length and arrival."""
    problems = spec.validate()
    if not profiles:
        problems.append("profiles: need at least one job profile")
    if problems:
        raise ValueError("mix: " + "; ".join(problems))
    rng = random.Random(spec.seed)
    shapes: list[tuple[Job, int]] = []
    for _ in range(spec.jobs):
        profile = rng.choice(list(profiles))
        length = rng.choice(spec.lengths_s)
        shapes.append((profile, max(1, math.ceil(length / profile.iteration_s))))
    work = sum(p.iteration_s * n for p, n in shapes)
    rate = spec.load * spec.gpus * spec.jobs / work  # jobs per second
    group = spec.burst if spec.arrivals == "bursty" else 1
    t, out = 0.0, []
    for k, (profile, iterations) in enumerate(shapes):
        if k % group == 0 and k > 0:
            t += rng.expovariate(rate / group)
        out.append(replace(profile, name=JobId(f"m{k:03d}"), arrival_s=round(t, 3), iterations=iterations))
    return out
