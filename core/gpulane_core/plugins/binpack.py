"""Binpack: fill the fullest GPU (and node) that still fits, keeping the rest free (best fit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.framework import CycleContext, clamp_normalize
from gpulane_core.model import Job
from gpulane_core.plugins.occupancy import fills_after


@dataclass(frozen=True, slots=True)
class BinpackArgs:
    gpu_share: float = 0.7  # how much the chosen GPU's fill counts against the node's fill

    def validate(self) -> list[str]:
        if not 0.0 <= self.gpu_share <= 1.0:
            return [f"gpu_share: must be within 0..1, got {self.gpu_share}"]
        return []


@dataclass(frozen=True, slots=True)
class Binpack:
    args: BinpackArgs = BinpackArgs()
    name: str = "Binpack"

    def validate(self) -> list[str]:
        return self.args.validate()

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        return self.score_options(ctx, job, (option,))[0]

    def score_options(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]:
        share = self.args.gpu_share
        rest = 1 - share
        return [share * gpu + rest * node for gpu, node in fills_after(ctx, options)]

    def normalize(self, scores: Sequence[float]) -> list[float]:
        return clamp_normalize(scores)
