"""Spread: put the job where the most memory stays free (least interference, worst packing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.framework import CycleContext, clamp_normalize
from gpulane_core.model import Job
from gpulane_core.plugins.occupancy import gpu_fill_after, node_fill_after


@dataclass(frozen=True, slots=True)
class Spread:
    name: str = "Spread"

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        fill = 0.7 * gpu_fill_after(ctx, option) + 0.3 * node_fill_after(ctx, option)
        return 1.0 - fill

    def normalize(self, scores: Sequence[float]) -> list[float]:
        return clamp_normalize(scores)
