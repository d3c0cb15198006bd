"""Framework vocabulary: profiles, normalization, tie-breaks, idempotent unreserve, the registry."""

from __future__ import annotations

import pytest
from gpulane_core.cluster import ClusterState
from gpulane_core.framework import CycleContext, LaneReserve, Profile, WeightedScore, minmax_normalize
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.plugins.binpack import Binpack, BinpackArgs
from gpulane_core.plugins.filters import GpuType, HealthyGpus
from gpulane_core.plugins.lane_aware import LaneFit, LaneFitArgs
from gpulane_core.registry import Registry, default_registry


def _state() -> ClusterState:
    return ClusterState.of(
        [Node(NodeName("b"), (Gpu(0, "b0", "T4", 8192),)), Node(NodeName("a"), (Gpu(0, "a0", "T4", 8192),))]
    )


def test_equal_scores_tie_break_on_node_then_gpu() -> None:
    state = _state()
    job = Job(JobId("j"), 100, 100)
    options = [o for n in ("b", "a") for o in state.candidates(job, NodeName(n))]
    profile = default_registry().profile("binpack")
    chosen = profile.select(CycleContext(state), job, options)
    assert chosen is not None and chosen.node == "a"


def test_filters_name_the_plugin_that_said_no() -> None:
    state = ClusterState.of([Node(NodeName("a"), (Gpu(0, "a0", "T4", 8192, healthy=False),))])
    job = Job(JobId("j"), 100, 100, gpu_types=frozenset({"A100"}))
    healthy_job = Job(JobId("k"), 100, 100)
    # candidates() already skips the GPU; build the option on a healthy copy to test the filters alone.
    ok_state = ClusterState.of([Node(NodeName("a"), (Gpu(0, "a0", "T4", 8192),))])
    option = next(ok_state.candidates(healthy_job, NodeName("a")))
    assert HealthyGpus().filter(CycleContext(state), healthy_job, option).plugin == "HealthyGpus"
    status = GpuType().filter(CycleContext(ok_state), job, option)
    assert not status.ok and "job wants A100" in status.message


def test_unreserve_is_idempotent() -> None:
    state = _state()
    job = Job(JobId("j"), 100, 100)
    option = next(state.candidates(job, NodeName("a")))
    plugin = LaneReserve()
    reserved = plugin.reserve(state, job, option)
    once = plugin.unreserve(reserved, job.name)
    assert plugin.unreserve(once, job.name) == once
    assert plugin.unreserve(state, JobId("never")) == state


def test_minmax_normalize() -> None:
    assert minmax_normalize([1.0, 3.0, 2.0]) == [0.0, 100.0, 50.0]
    assert minmax_normalize([4.0, 4.0]) == [100.0, 100.0]
    assert minmax_normalize([]) == []


def test_profile_validation_names_fields() -> None:
    bad = Profile(
        "p",
        scores=(
            WeightedScore(Binpack(BinpackArgs(gpu_share=2.0)), 0),
            WeightedScore(LaneFit(LaneFitArgs(-1, 0.2))),
        ),
    )
    problems = bad.validate()
    assert "profile p: scores[0].weight (Binpack) must be >= 1" in problems
    assert "profile p: Binpack: gpu_share: must be within 0..1, got 2.0" in problems
    assert "profile p: LaneFit: share_cost_per_job: must be within 0..1, got -1" in problems


def test_registry_is_explicit() -> None:
    registry = default_registry()
    lane_profiles = ["binpack", "gpulane", "gpulane-late", "least-work", "spread"]
    fgd_family = ["bestfit", "dotprod", "fgd", "fgd-balance", "gpuclustering", "gpupacking", "random"]
    assert registry.names() == sorted(lane_profiles + fgd_family)  # one name per algorithm
    assert sorted(registry.scorers) == fgd_family and set(registry.summaries) == set(registry.names())
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_placement("binpack", registry.placements["binpack"])
    extra = default_registry([lambda r: r.register_placement("mine", lambda: Profile("mine"))])
    assert "mine" in extra.names()
    assert Registry().names() == []
