"""LeastWorkAhead: the marginal flow time of SRPT dispatch, and the GPU the profile picks by it."""

from __future__ import annotations

import pytest
from gpulane_core.cluster import ClusterState
from gpulane_core.facts import measure
from gpulane_core.framework import CycleContext
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.plugins.workahead import LeastWorkAhead, marginal_flow_s
from gpulane_core.registry import default_registry
from hypothesis import given
from hypothesis import strategies as st


def test_marginal_flow_counts_shorter_work_ahead_and_longer_tenants_delayed() -> None:
    assert marginal_flow_s(5.0, []) == 5.0
    # Waits for 2 and 3, runs 5, and delays the 10-second tenant by 5.
    assert marginal_flow_s(5.0, [2.0, 3.0, 10.0]) == pytest.approx(2 + 3 + 5 * 2)
    assert marginal_flow_s(5.0, [5.0]) == pytest.approx(10.0)  # an equal tenant keeps its place


def _job(name: str, seconds: float, persistent: int = 1_000) -> Job:
    return Job(JobId(name), persistent, 2_000, iteration_s=seconds, iterations=1)


def _state() -> ClusterState:
    gpus = tuple(Gpu(i, f"GPU-{i}", "fake", 16_384) for i in range(2))
    return ClusterState.of([Node(NodeName("n"), gpus)], time_shared=True)


def _place(state: ClusterState, job: Job, index: int) -> ClusterState:
    option = next(o for o in state.candidates(job, NodeName("n")) if o.first.index == index)
    return state.reserve(job, option)


def _pick(state: ClusterState, job: Job) -> int:
    profile = default_registry().profile("least-work")
    chosen = profile.select(CycleContext(state), job, list(state.candidates(job, NodeName("n"))))
    assert chosen is not None
    return chosen.first.index


def test_a_short_job_goes_where_less_work_waits_even_if_that_gpu_holds_more_memory() -> None:
    state = _place(_state(), _job("long", 100.0, persistent=1_000), 0)
    state = _place(state, _job("short-a", 2.0, persistent=4_000), 1)
    state = _place(state, _job("short-b", 2.0, persistent=4_000), 1)
    # A 3 s job: ahead of the 100 s job on GPU 0 (3 + 3 = 6) or behind 4 s of work on GPU 1 (7).
    assert _pick(state, _job("new", 3.0)) == 0
    # A 50 s job: ahead of the long one on GPU 0 (50 + 50 = 100) or behind 4 s on GPU 1 (54), although
    # GPU 1 holds more memory (spread would pick GPU 0).
    assert _pick(state, _job("mid", 50.0)) == 1
    assert default_registry().profile("spread").select(
        CycleContext(state), _job("mid", 50.0), list(state.candidates(_job("mid", 50.0), NodeName("n")))
    ).first.index == 0  # type: ignore[union-attr]


def test_an_idle_gpu_wins() -> None:
    state = _place(_state(), _job("a", 1.0), 0)
    assert _pick(state, _job("new", 1.0)) == 1


@given(st.floats(0.1, 100.0), st.lists(st.floats(0.1, 100.0), max_size=5))
def test_the_bound_caps_every_score(work: float, tenants: list[float]) -> None:
    state = _state()
    for i, seconds in enumerate(tenants):
        state = _place(state, _job(f"t{i}", seconds, persistent=100), 0)
    job = _job("new", work, persistent=100)
    plugin = LeastWorkAhead()
    facts = measure(state.nodes[NodeName("n")]).bounds
    for option in state.candidates(job, NodeName("n")):
        score = plugin.score(CycleContext(state), job, option)
        assert 0.0 < score <= plugin.upper_bound(job, facts)
