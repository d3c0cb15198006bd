"""gpulane's lane-aware scorers: share what is already in use, keep whole GPUs free, don't grow lanes.

Design (documented in docs/scheduling.md). Salus' Algorithm 1 already picks, per GPU, how a job joins
(new lane, share, grow). Across GPUs the profile ``gpulane`` prefers:

* GPUs already in use, tightest first (:class:`~gpulane_core.plugins.binpack.Binpack`), so memory is
  not scattered over many half-used GPUs;
* options that leave whole GPUs and nodes with many empty GPUs alone (:class:`KeepWholeGpus`), so
  multi-GPU jobs (which need empty GPUs on one node) still find room;
* joining without growth (:class:`LaneFit`): a new lane on a used GPU runs concurrently, sharing a
  lane costs turns (more so the more jobs it already holds), and growing a lane eats the headroom
  that keeps every other lane runnable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.framework import CycleContext, clamp_normalize
from gpulane_core.lanes import AdmissionKind
from gpulane_core.model import Job
from gpulane_core.plugins.occupancy import empties_after


@dataclass(frozen=True, slots=True)
class KeepWholeGpus:
    """1 when the option opens no empty GPU and leaves the node's empty GPUs together; 0 worst."""

    name: str = "KeepWholeGpus"

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        return self.score_options(ctx, job, (option,))[0]

    def score_options(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]:
        nodes = ctx.state.nodes
        out: list[float] = []
        for option, (empty_after, healthy) in zip(options, empties_after(ctx, options), strict=True):
            node_part = 1.0 - empty_after / healthy if healthy else 0.0
            if job.gpus > 1:
                # Take whole GPUs from the node that has just enough of them.
                out.append(node_part)
                continue
            opens_empty = nodes[option.node].lanes[option.first.index].is_empty
            out.append(0.5 * (0.0 if opens_empty else 1.0) + 0.5 * node_part)
        return out

    def normalize(self, scores: Sequence[float]) -> list[float]:
        return clamp_normalize(scores)


@dataclass(frozen=True, slots=True)
class LaneFitArgs:
    share_cost_per_job: float = 0.1  # each job already in a lane adds a turn to wait for
    grow_score: float = 0.2

    def validate(self) -> list[str]:
        problems: list[str] = []
        if not 0.0 <= self.share_cost_per_job <= 1.0:
            problems.append(f"share_cost_per_job: must be within 0..1, got {self.share_cost_per_job}")
        if not 0.0 <= self.grow_score <= 1.0:
            problems.append(f"grow_score: must be within 0..1, got {self.grow_score}")
        return problems


@dataclass(frozen=True, slots=True)
class LaneFit:
    args: LaneFitArgs = LaneFitArgs()
    name: str = "LaneFit"

    def validate(self) -> list[str]:
        return self.args.validate()

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        return self.score_options(ctx, job, (option,))[0]

    def score_options(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]:
        nodes = ctx.state.nodes
        grow, cost = self.args.grow_score, self.args.share_cost_per_job
        out: list[float] = []
        for option in options:
            choice = option.gpus[0]
            plan = choice.plan
            kind = plan.kind
            if kind is AdmissionKind.NEW_LANE or kind is AdmissionKind.EXCLUSIVE:
                out.append(1.0)
            elif kind is AdmissionKind.GROW_LANE:
                out.append(grow)
            else:
                members = len(nodes[option.node].lanes[choice.index].lane(plan.lane).jobs)
                out.append(max(grow, 0.9 - cost * (members - 1)))
        return out

    def normalize(self, scores: Sequence[float]) -> list[float]:
        return clamp_normalize(scores)
