"""Scheduler-framework vocabulary shared by the operator and the simulator.

Modelled on the Kubernetes scheduler framework (``framework/interface.go``): small extension points
that each return a :class:`~gpulane_core.status.Status` or a score, and a :class:`Profile` that runs
the enabled plugins with weights. Here the unit being filtered and scored is a *placement option*
(node, GPUs, lane plan), because gpulane decides the lane as well as the node.

Contracts (as in Kubernetes):

* a score plugin returns a raw score; ``normalize`` maps the raw scores of one job's options onto
  0..100 (:data:`MAX_SCORE`); the profile adds them with integer weights;
* ``unreserve`` must be idempotent: releasing twice, or releasing a job never reserved, is harmless;
* plugin arguments are typed dataclasses with ``validate() -> list[str]`` (field-named problems);
* plugins are registered by a function (:mod:`gpulane_core.registry`), never at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

from gpulane_core.cluster import ClusterState, Placement
from gpulane_core.facts import BoundFacts
from gpulane_core.model import Job, JobId, NodeName
from gpulane_core.ordering import TurnStats
from gpulane_core.status import Status

MAX_SCORE = 100
MIN_SCORE = 0
_PASSED = Status.success()  # immutable: passing every filter allocates nothing


@dataclass(frozen=True, slots=True)
class CycleContext:
    """What plugins may read during one decision: the state as it is now and the clock.

    ``memo`` is scratch space for one decision (one job, one state), so plugins can share derived
    values instead of recomputing them for every option; values derived from one node's view alone
    belong in that view's ``NodeView.derived``, which outlives the decision.
    """

    state: ClusterState
    now_s: float = 0.0
    memo: dict[object, object] = field(default_factory=dict, compare=False, hash=False)


@runtime_checkable
class PluginArgs(Protocol):
    def validate(self) -> list[str]: ...


class Plugin(Protocol):
    @property
    def name(self) -> str: ...


class FilterPlugin(Plugin, Protocol):
    """Rejects a placement option with an Unschedulable status, or accepts it with Success."""

    def filter(self, ctx: CycleContext, job: Job, option: Placement) -> Status: ...


class ScorePlugin(Plugin, Protocol):
    """Rates a feasible option; ``normalize`` maps one job's raw scores onto 0..100."""

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float: ...

    def normalize(self, scores: Sequence[float]) -> list[float]: ...


@runtime_checkable
class BatchScorePlugin(ScorePlugin, Protocol):
    """A score plugin that also rates all options of one decision in one call.

    Promise: ``score_options(ctx, job, options)[i] == score(ctx, job, options[i])``, the same float
    (the built-in plugins define ``score`` through it). The profile prefers it: one call per plugin
    and decision instead of one per option, with each node's totals looked up once.
    """

    def score_options(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]: ...


@runtime_checkable
class BoundedScorePlugin(ScorePlugin, Protocol):
    """A score plugin that can cap, from a node's facts alone, the raw score of any option on it.

    Promises: ``upper_bound`` is at least ``score`` of every option ``job`` can have on a node with
    these facts (or on any node merged into them), and ``normalize`` maps each raw score on its own,
    never decreasing. Then an option's total does not depend on the other options, and the search
    may skip a node whose bound cannot reach the best total found so far.
    """

    def upper_bound(self, job: Job, facts: BoundFacts) -> float: ...


class ReservePlugin(Plugin, Protocol):
    """Commits a decision into the state; ``unreserve`` must be idempotent."""

    def reserve(self, state: ClusterState, job: Job, option: Placement) -> ClusterState: ...

    def unreserve(self, state: ClusterState, job: JobId) -> ClusterState: ...


class OrderPlugin(Plugin, Protocol):
    """Sorts jobs (the pending queue, or the turns of one lane)."""

    def order(self, stats: Sequence[TurnStats]) -> list[JobId]: ...


def clamp_normalize(scores: Sequence[float]) -> list[float]:
    """For plugins whose raw score is a fraction in [0, 1]: scale to 0..100, clamping outliers."""
    hi, lo = float(MAX_SCORE), float(MIN_SCORE)  # once per call, not twice per score
    # min(hi, max(lo, v)) by comparison (max keeps lo unless v > lo, min keeps hi unless v < hi; NaN
    # too), without two builtin calls per score; lo < hi, so a v not above lo stays lo.
    return [(v if v < hi else hi) if (v := s * MAX_SCORE) > lo else lo for s in scores]


def minmax_normalize(scores: Sequence[float]) -> list[float]:
    """Spread raw scores of unknown range over 0..100 (all equal -> all 100)."""
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [float(MAX_SCORE)] * len(scores)
    return [(s - lo) * MAX_SCORE / (hi - lo) for s in scores]


@dataclass(frozen=True, slots=True)
class WeightedScore:
    plugin: ScorePlugin
    weight: int = 1


@dataclass(frozen=True, slots=True)
class LaneReserve:
    """The one reserve plugin: admit the job to its lanes (Salus Algorithm 1 plans)."""

    name: str = "LaneReserve"

    def reserve(self, state: ClusterState, job: Job, option: Placement) -> ClusterState:
        return state.reserve(job, option)

    def unreserve(self, state: ClusterState, job: JobId) -> ClusterState:
        return state.unreserve(job)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named set of enabled plugins: filters all must pass, scores added with weights."""

    name: str
    filters: tuple[FilterPlugin, ...] = ()
    scores: tuple[WeightedScore, ...] = ()
    reserve: ReservePlugin = LaneReserve()
    # Symmetric: plugins score GPUs (and nodes) in identical states identically, so the scheduler
    # may score one representative of each identical group (the lowest index or name, which the
    # tie-break would pick anyway). Set False for a plugin that looks at GPU indices or node names.
    symmetric: bool = True

    def validate(self) -> list[str]:
        problems: list[str] = []
        if not self.name:
            problems.append("profile.name: must not be empty")
        for i, ws in enumerate(self.scores):
            if ws.weight < 1:
                problems.append(f"profile {self.name}: scores[{i}].weight ({ws.plugin.name}) must be >= 1")
            if isinstance(ws.plugin, PluginArgs):
                problems += [f"profile {self.name}: {ws.plugin.name}: {p}" for p in ws.plugin.validate()]
        return problems

    def run_filters(self, ctx: CycleContext, job: Job, option: Placement) -> Status:
        for plugin in self.filters:
            status = plugin.filter(ctx, job, option)
            if not status.ok:
                return status
        return _PASSED

    def total_scores(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]:
        """Weighted sum of each plugin's normalized scores, one total per option."""
        totals = [0.0] * len(options)
        for ws in self.scores:
            plugin, weight = ws.plugin, ws.weight
            batch = getattr(plugin, "score_options", None)  # BatchScorePlugin, without a Protocol walk
            raw = batch(ctx, job, options) if callable(batch) else [plugin.score(ctx, job, o) for o in options]
            # total + weight * score, option by option: the same additions as one += per option.
            totals = [t + weight * s for t, s in zip(totals, plugin.normalize(raw), strict=True)]
        return totals

    def select(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> Placement | None:
        """The best option that passes every filter; ties go to the lowest (node, GPU indices)."""
        best = self.best(ctx, job, options)
        return best[1] if best is not None else None

    def best(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> Ranked | None:
        """:meth:`select` with its sort key; the best of several groups is the min of their keys."""
        # Filter by filter: an option meets the next filter only after passing the ones before, as in
        # run_filters, without a call per option to walk the filters.
        feasible = list(options)
        for plugin in self.filters:
            feasible = [o for o in feasible if plugin.filter(ctx, job, o).ok]
        if not feasible:
            return None
        totals = self.total_scores(ctx, job, feasible)
        top, checksum = max(totals), sum(totals)
        if checksum == checksum:  # no NaN in totals (NaN makes the order partial: keep the full key)
            # The key's first field decides unless totals tie: build the rest for the tied only.
            tied = [i for i, t in enumerate(totals) if t == top]
            best = tied[0] if len(tied) == 1 else min(tied, key=lambda i: _tie_key(feasible[i]))
        else:
            best = min(range(len(feasible)), key=lambda i: (-totals[i], *_tie_key(feasible[i])))
        option = feasible[best]
        return (-totals[best], option.node, tuple(c.index for c in option.gpus)), option

    def bounders(self) -> Bounders | None:
        """The weighted score plugins when every one can bound its scores, else None (no pruning)."""
        out: list[tuple[int, BoundedScorePlugin]] = []
        for ws in self.scores:
            # Not isinstance(..., BoundedScorePlugin): a runtime Protocol check walks the protocol's
            # attributes on every call, and this runs once per scheduling cycle.
            if not callable(getattr(ws.plugin, "upper_bound", None)):
                return None
            out.append((ws.weight, cast(BoundedScorePlugin, ws.plugin)))
        return tuple(out)


Bounders = tuple[tuple[int, BoundedScorePlugin], ...]


def _tie_key(option: Placement) -> tuple[NodeName, tuple[int, ...]]:
    return option.node, tuple(c.index for c in option.gpus)


def bound_total(bounders: Bounders, job: Job, facts: BoundFacts) -> float:
    """No option of ``job`` on a node with these facts totals more (as ``Profile.total_scores`` adds)."""
    return bound_totals(bounders, job, (facts,))[0]


def bound_totals(bounders: Bounders, job: Job, facts: Sequence[BoundFacts]) -> list[float]:
    """:func:`bound_total` of each of several nodes' facts, one ``normalize`` call per plugin: a
    bounded plugin normalizes each score on its own, so the batch maps each bound as alone."""
    totals = [0.0] * len(facts)
    for weight, plugin in bounders:
        bounds = plugin.normalize([plugin.upper_bound(job, f) for f in facts])
        totals = [t + weight * b for t, b in zip(totals, bounds, strict=True)]
    return totals


# A ranked option: (-total score, node, GPU indices), lowest first, and the option itself.
Ranked = tuple[tuple[float, NodeName, tuple[int, ...]], Placement]
