"""One cycle's candidate search: which options of a job are scored, and the best of them.

The rules are in :mod:`gpulane_core.scheduler`'s docstring: the rotating kube-scheduler search with
its limit, and for symmetric profiles one representative per shape of empty node plus the occupied
nodes from a rotating cursor. What this module adds changes no decision, only the work per decision:

* a node counts as feasible from its :class:`~gpulane_core.facts.NodeFacts` where they decide it,
  and its options are listed only when they may be scored;
* when every score plugin can bound its scores (:class:`~gpulane_core.framework.BoundedScorePlugin`,
  the ``spread`` profile), nodes are scored highest bound first and a node whose bound falls short
  of the best total found so far is not listed, and when every occupied node admits the job and their merged facts fall short, the
  window is not walked at all: only the cursor moves, to where the walk would have left it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

from gpulane_core.cluster import ClusterState, NodeView, Placement
from gpulane_core.facts import BoundFacts, NodeFacts, measure, merge_all
from gpulane_core.framework import Bounders, CycleContext, Profile, Ranked, bound_total, bound_totals
from gpulane_core.model import Job, NodeName

# Bounds are added along another float path than the scores: never prune on a near-tie.
_SLACK = 1e-6

NodeShape = tuple[tuple[int, str, int, bool], ...]


@dataclass(frozen=True, slots=True)
class Envelope:
    """The occupied nodes together: their merged bound facts and the least any of them has free."""

    bounds: BoundFacts
    max_free_floor: int  # the smallest of their largest free memories
    empty_floor: int  # the fewest empty GPUs on one of them

    def widen(self, facts: NodeFacts) -> Envelope:
        return Envelope(
            self.bounds.merge(facts.bounds),
            min(self.max_free_floor, facts.max_free_mib),
            min(self.empty_floor, facts.empty),
        )


class NodeIndex:
    """Per-cycle facts of each node, its occupied nodes (sorted) and its empty nodes by shape."""

    def __init__(self, state: ClusterState) -> None:
        self.facts: dict[NodeName, NodeFacts] = {}
        # A node's inventory does not change within a cycle: identical shapes are interchangeable.
        self.shape: dict[NodeName, NodeShape] = {}
        self.occupied_names: list[NodeName] = []  # sorted
        # Aligned with occupied_names, so that the search filters them without a call per node.
        self.occupied_free: list[int] = []  # max_free_mib
        self.occupied_empty: list[int] = []  # empty
        self.empty_by_shape: dict[NodeShape, list[NodeName]] = {}  # each sorted: [0] is the representative
        self._envelope: Envelope | None = None  # None: not known (built on demand)
        # What refresh() would build node by node, in name order, so appending keeps every list sorted
        # (a cycle builds the index once, usually over unchanged views whose facts are kept on them).
        for name in sorted(state.nodes):
            view = state.nodes[name]
            facts = self.facts[name] = measure(view)
            shape = self.shape[name] = node_shape(view)
            empties = self.empty_by_shape.setdefault(shape, [])
            if facts.occupied > 0:
                self.occupied_names.append(name)
                self.occupied_free.append(facts.max_free_mib)
                self.occupied_empty.append(facts.empty)
            else:
                empties.append(name)

    def refresh(self, state: ClusterState, name: NodeName) -> None:
        old = self.facts.get(name)
        new = self.facts[name] = measure(state.nodes[name])
        was = None if old is None else old.occupied > 0
        now = new.occupied > 0
        if was is now:
            if now:
                at = bisect_left(self.occupied_names, name)
                self.occupied_free[at], self.occupied_empty[at] = new.max_free_mib, new.empty
                self._envelope = None  # the node's old extremes may have been the envelope's
            return
        empties = self.empty_by_shape.setdefault(self.shape[name], [])
        if now:
            if was is not None:
                empties.pop(bisect_left(empties, name))
            at = bisect_left(self.occupied_names, name)
            self.occupied_names.insert(at, name)
            self.occupied_free.insert(at, new.max_free_mib)
            self.occupied_empty.insert(at, new.empty)
            if self._envelope is not None:
                self._envelope = self._envelope.widen(new)
        else:
            insort(empties, name)
            if was is not None:
                at = bisect_left(self.occupied_names, name)
                del self.occupied_names[at], self.occupied_free[at], self.occupied_empty[at]
                self._envelope = None

    def envelope(self) -> Envelope:
        """Of the occupied nodes; only while there is one."""
        if self._envelope is None:
            # Built once per cycle (the index is): in one pass, not one widened copy per node.
            self._envelope = Envelope(
                merge_all([self.facts[name].bounds for name in self.occupied_names]),
                min(self.occupied_free),
                min(self.occupied_empty),
            )
        return self._envelope

    def may_fit(self, name: NodeName, job: Job) -> bool:
        facts = self.facts[name]
        if job.gpus > 1:
            return facts.empty >= job.gpus
        return facts.max_free_mib >= job.persistent_mib

    def fits(
        self, state: ClusterState, name: NodeName, job: Job, listed: dict[NodeName, list[Placement]] | None = None
    ) -> bool:
        """Whether ``state.candidates(job, name)`` yields anything, given :meth:`may_fit`.

        ``listed``: where the facts cannot tell, the node's distinct options are listed into it (they
        exist exactly when any option does: ``distinct`` skips an idle GPU only after offering its
        like), so that scoring the node in the same decision does not list them again.
        """
        facts = self.facts[name]
        if job.gpus == 1 and not job.restricted:
            if facts.max_free_mib >= job.footprint_mib:
                return True
            if facts.max_headroom_mib < job.footprint_mib:
                return False
        if listed is None:
            return next(state.candidates(job, name), None) is not None
        options = listed[name] = list(state.candidates(job, name, distinct=True))
        return bool(options)

    def all_fit(self, job: Job) -> bool:
        """Every occupied node admits ``job`` (false when the facts cannot tell)."""
        if job.restricted or not self.occupied_names:
            return False
        env = self.envelope()
        if job.gpus == 1:
            return env.max_free_floor >= job.footprint_mib
        idle = env.bounds.idle
        return env.empty_floor >= job.gpus and idle is not None and idle.capacity_min >= job.footprint_mib


def node_shape(view: NodeView) -> NodeShape:
    """The view's GPU inventory (index, model, memory, health); kept on the view like its facts."""
    kept = view.derived.get("shape")
    if isinstance(kept, tuple):
        return kept
    shape = tuple((g.index, g.model, g.memory_mib, g.healthy) for g in view.node.gpus)
    view.derived["shape"] = shape
    return shape


def _better(a: Ranked | None, b: Ranked | None) -> Ranked | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b[0] < a[0] else a


class Search:
    """The candidate search of one cycle; ``limit`` is kube-scheduler's numFeasibleNodesToFind."""

    def __init__(self, state: ClusterState, profile: Profile, limit: int) -> None:
        self.profile = profile
        self.limit = limit
        self.index = NodeIndex(state)
        self.names = sorted(state.nodes)
        self.start = 0  # rotation over all nodes (profiles that are not symmetric)
        self.cursor: NodeName | None = None  # last occupied node examined (symmetric rotation)
        self.bounders: Bounders | None = profile.bounders() if profile.symmetric else None

    def choose(self, ctx: CycleContext, job: Job) -> tuple[Placement | None, bool]:
        """The selected option, and whether the job had any option at all."""
        if not self.names:
            return None, False
        if not self.profile.symmetric:
            options = self._all_options(ctx.state, job)
            return self.profile.select(ctx, job, options), bool(options)
        return self._symmetric(ctx, job)

    def _all_options(self, state: ClusterState, job: Job) -> list[Placement]:
        """kube-scheduler's search: nodes from a rotating start until enough are feasible."""
        n = len(self.names)
        options: list[Placement] = []
        found = examined = 0
        for k in range(n):
            examined = k + 1
            name = self.names[(self.start + k) % n]
            if not self.index.may_fit(name, job):
                continue
            node_options = list(state.candidates(job, name))
            if node_options:
                options.extend(node_options)
                found += 1
                if found >= self.limit:
                    break
        self.start = (self.start + examined) % n
        return options

    def _window(
        self, state: ClusterState, job: Job, listed: dict[NodeName, list[Placement]]
    ) -> list[NodeName]:
        """The feasible occupied nodes the rotating search visits, in order; moves the cursor.

        ``listed`` receives the options of the nodes whose fit had to be found by listing them."""
        occupied = self.index.occupied_names
        m = len(occupied)
        if not m:
            return []
        first = bisect_right(occupied, self.cursor) if self.cursor is not None else 0
        if self.bounders is not None and self.index.all_fit(job):
            count = min(self.limit, m)
            self.cursor = occupied[(first + count - 1) % m]
            return [occupied[(first + k) % m] for k in range(count)]
        # may_fit over the aligned lists, in rotation order from the cursor.
        need, have = (
            (job.gpus, self.index.occupied_empty) if job.gpus > 1 else (job.persistent_mib, self.index.occupied_free)
        )
        maybe = [k for k in range(first, m) if have[k] >= need] + [k for k in range(first) if have[k] >= need]
        found: list[NodeName] = []
        last = (first - 1) % m  # where the walk ends when fewer than the limit are feasible
        for k in maybe:
            name = occupied[k]
            if self.index.fits(state, name, job, listed):
                found.append(name)
                if len(found) >= self.limit:
                    last = k
                    break
        self.cursor = occupied[last]
        return found

    def _symmetric(self, ctx: CycleContext, job: Job) -> tuple[Placement | None, bool]:
        """Score the lowest-named empty node of each shape, then the window of occupied nodes."""
        state, index, profile = ctx.state, self.index, self.profile
        # Empty nodes of one shape are alike, unless the job may use only some GPUs (allowed_gpus names
        # GPUs, not shapes): then each such node is a different option.
        every = job.allowed_gpus is not None
        options = [
            option
            for names in index.empty_by_shape.values()
            for name in (names if every else names[:1])
            if index.may_fit(name, job)
            for option in state.candidates(job, name, distinct=True)
        ]
        listed: dict[NodeName, list[Placement]] = {}
        window = self._window(state, job, listed)
        seen = bool(options or window)

        def options_on(name: NodeName) -> list[Placement]:
            known = listed.get(name)
            return known if known is not None else list(state.candidates(job, name, distinct=True))

        if self.bounders is None:
            for name in window:
                options.extend(options_on(name))
            return profile.select(ctx, job, options), seen
        best = profile.best(ctx, job, options)
        bar = -best[0][0] - _SLACK if best is not None else -math.inf
        # Nothing in the window can win: skip it whole (the cursor has already moved past it).
        envelope = index.envelope() if best is not None and window and index.all_fit(job) else None
        if best is not None and envelope is not None and bound_total(self.bounders, job, envelope.bounds) < bar:
            return best[1], seen
        # Highest bound first (branch and bound): the bar rises early, and once a node's bound falls
        # short every later one does too. The best option is the same in any order: it is the least
        # key over the nodes not pruned, and a pruned node has no option that could win.
        facts = index.facts
        bounds = bound_totals(self.bounders, job, [facts[name].bounds for name in window])
        for k in sorted(range(len(window)), key=lambda k: -bounds[k]):
            if bounds[k] < bar:
                break
            best = _better(best, profile.best(ctx, job, options_on(window[k])))
            if best is not None:
                bar = -best[0][0] - _SLACK
        return (best[1] if best is not None else None), seen
