"""Spread: put the job where the most memory stays free (least interference, worst packing)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.facts import BoundFacts
from gpulane_core.framework import CycleContext, clamp_normalize
from gpulane_core.model import Job
from gpulane_core.plugins.occupancy import fills_after

# The chosen GPUs' fill against the node's (literals: 1 - 0.7 is not 0.3 in floats).
_GPU_SHARE, _NODE_SHARE = 0.7, 0.3


def _fill(mib: int, capacity: int) -> float:
    if capacity <= 0:
        return 1.0
    fill = mib / capacity
    return fill if fill < 1.0 else 1.0  # min(1.0, fill), without the builtin call


@dataclass(frozen=True, slots=True)
class Spread:
    name: str = "Spread"

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        return self.score_options(ctx, job, (option,))[0]

    def score_options(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]:
        return [1.0 - (_GPU_SHARE * gpu + _NODE_SHARE * node) for gpu, node in fills_after(ctx, options)]

    def upper_bound(self, job: Job, facts: BoundFacts) -> float:
        """The score with each fill at its least. A GPU's committed memory after admitting (P, E) is
        at least its committed + P and at least its persistent + P + E (a shared or grown lane
        already holds E), so the node's is at least committed + P and committed - lanes + P + E."""
        p, need, node = job.persistent_mib, job.footprint_mib, facts.committed_mib
        if job.gpus > 1:
            if facts.idle is None:
                return -math.inf  # no empty GPU: no option at all
            # Whole GPUs: each is filled completely and the node grows by their capacities.
            took = job.gpus * max(need, facts.idle.capacity_min)
            return 1.0 - (_GPU_SHARE * 1.0 + _NODE_SHARE * _fill(node + took, facts.capacity_mib))
        best = -math.inf
        for gpus in (facts.used, facts.idle):
            if gpus is not None:
                # max() by comparison: the same ints and floats, no builtin call (a bound per node).
                a, b = gpus.committed_min + p, gpus.persistent_min + need
                gpu = _fill(a if a > b else b, gpus.capacity_max)
                a, b = node + p, node - gpus.lanes_max + need
                whole = _fill(a if a > b else b, facts.capacity_mib)
                score = 1.0 - (_GPU_SHARE * gpu + _NODE_SHARE * whole)
                if score > best:
                    best = score
        return best

    def normalize(self, scores: Sequence[float]) -> list[float]:
        return clamp_normalize(scores)
