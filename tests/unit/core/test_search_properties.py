"""The fast candidate search (gpulane_core.search) decides exactly as scoring every option would.

The reference below has no shortcut: every option of every empty node, plus every option of the
occupied nodes the rotating window visits (from the cursor until ``limit`` feasible ones), all
scored by ``Profile.select``. Clusters reach 130 nodes, so the adaptive limit (100) cuts windows.
"""

from __future__ import annotations

import random
from bisect import bisect_right

from gpulane_core.cluster import ClusterState, Placement
from gpulane_core.facts import measure
from gpulane_core.framework import CycleContext, Profile
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.plugins.spread import Spread
from gpulane_core.registry import default_registry
from gpulane_core.scheduler import PendingJob, SchedulerConfig, nodes_to_find, schedule_cycle
from gpulane_core.search import NodeIndex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_POLICIES = st.sampled_from(["spread", "binpack", "gpulane"])


def _job(rng: random.Random, name: str) -> Job:
    return Job(
        JobId(name),
        rng.choice([0, rng.randint(0, 6_000)]),
        rng.randint(1, 9_000),
        gpus=rng.choice([1, 1, 1, 1, 2, 3]),
        gpu_types=rng.choice([frozenset(), frozenset(), frozenset({"T4"})]),
    )


def _cluster(rng: random.Random, nodes: int, fill: float) -> ClusterState:
    """Nodes of a few shapes (so empty ones share one), some prefilled with jobs on random GPUs."""
    shapes = [
        tuple(
            (rng.choice(["A100", "T4"]), rng.choice([8_192, 16_384]), rng.random() > 0.1)
            for _ in range(rng.randint(1, 4))
        )
        for _ in range(rng.randint(1, 3))
    ]
    state = ClusterState.of(
        [
            Node(NodeName(f"n{i:03d}"), tuple(Gpu(g, f"n{i}-{g}", m, mem, ok) for g, (m, mem, ok) in enumerate(shape)))
            for i in range(nodes)
            for shape in [rng.choice(shapes)]
        ],
        time_shared=rng.random() < 0.2,
    )
    for i, name in enumerate(sorted(state.nodes)):
        for k in range(rng.randint(1, 3) if rng.random() < fill else 0):
            job = _job(rng, f"pre-{i}-{k}")
            options = list(state.candidates(job, name))
            if options:
                state = state.reserve(job, rng.choice(options))
    return state


def _reference(state: ClusterState, jobs: list[Job], profile: Profile, limit: int) -> list[Placement]:
    cursor: NodeName | None = None
    out: list[Placement] = []
    for job in jobs:
        names = sorted(state.nodes)
        occupied = [n for n in names if any(not g.is_empty for g in state.nodes[n].lanes.values())]
        options = [o for n in names if n not in set(occupied) for o in state.candidates(job, n)]
        first = bisect_right(occupied, cursor) if cursor is not None else 0
        found = 0
        for k in range(len(occupied)):
            cursor = occupied[(first + k) % len(occupied)]
            here = list(state.candidates(job, cursor))
            if here:
                options += here
                found += 1
                if found >= limit:
                    break
        choice = profile.select(CycleContext(state), job, options)
        if choice is not None:
            state = state.reserve(job, choice)
            out.append(choice)
    return out


def _compare(state: ClusterState, jobs: list[Job], policy: str) -> None:
    config = SchedulerConfig(placement=policy, preemption=False)
    fast = schedule_cycle(state, [PendingJob(j, float(k)) for k, j in enumerate(jobs)], config, 0.0)
    limit = nodes_to_find(len(state.nodes), config.percentage_of_nodes_to_score)
    assert list(fast.placements) == _reference(state, jobs, default_registry().profile(policy), limit)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.sampled_from([1, 3, 8, 30, 120, 130]), st.floats(0.0, 1.0), _POLICIES)
def test_fast_search_places_as_scoring_every_option(seed: int, nodes: int, fill: float, policy: str) -> None:
    rng = random.Random(seed)
    state = _cluster(rng, nodes, fill)
    _compare(state, [_job(rng, f"j{k:03d}") for k in range(rng.randint(1, 40))], policy)


def test_fast_search_places_as_scoring_every_option_when_windows_are_cut() -> None:
    """130 nodes, nearly all occupied: more feasible occupied nodes than the limit of 100."""
    for policy in ("spread", "binpack", "gpulane"):
        rng = random.Random(policy)
        state = _cluster(rng, 130, 0.95)
        _compare(state, [_job(rng, f"j{k:03d}") for k in range(60)], policy)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_node_facts_decide_fit_and_bound_spread(seed: int) -> None:
    """fits() agrees with listing options, and Spread's bound caps every option's score, also
    when taken over merged facts (the envelope of several nodes)."""
    rng = random.Random(seed)
    state = _cluster(rng, 4, 0.8)
    index = NodeIndex(state)
    spread = Spread()
    ctx = CycleContext(state)
    merged = None
    for name in sorted(state.nodes):
        bounds = measure(state.nodes[name]).bounds
        merged = bounds if merged is None else merged.merge(bounds)
    assert merged is not None
    for k in range(10):
        job = _job(rng, f"j{k}")
        for name in sorted(state.nodes):
            options = list(state.candidates(job, name))
            if index.may_fit(name, job):
                assert index.fits(state, name, job) == bool(options)
            else:
                assert not options
            for option in options:
                score = spread.score(ctx, job, option)
                assert score <= spread.upper_bound(job, index.facts[name].bounds) + 1e-9
                assert score <= spread.upper_bound(job, merged) + 1e-9


def test_spread_skips_whole_windows_and_moves_the_cursor_as_the_walk_would() -> None:
    """Spread on like nodes: every job first takes an empty node (the occupied window is skipped
    whole), then every occupied node admits the next jobs and the window of 100 of 110 is cut."""
    state = ClusterState.of(
        [Node(NodeName(f"n{i:03d}"), tuple(Gpu(g, f"{i}-{g}", "A100", 16_384) for g in range(4))) for i in range(110)]
    )
    rng = random.Random(7)
    jobs = [
        Job(JobId(f"j{k:03d}"), rng.randint(256, 2_048), rng.randint(512, 4_096), gpus=1 if k % 9 else 2)
        for k in range(240)
    ]
    _compare(state, jobs, "spread")
