"""The experiment protocol, the memoised engine and the artifact's curve discretisation."""

from __future__ import annotations

import random

import pytest
from gpulane_core.fragmentation.family import PolicyName, make_policy
from gpulane_core.fragmentation.frag import typical_pods
from gpulane_core.fragmentation.policy import fits, schedule
from gpulane_core.fragmentation.types import NodeState, PodShape
from gpulane_sim.place.curve import discrete_curve, mean_curves, published_final
from gpulane_sim.place.experiment import Engine, prepare, run, subsample
from gpulane_sim.place.trace import TracePod
from hypothesis import given, settings
from hypothesis import strategies as st

SHAPES = [
    PodShape(2000, 1, 250),
    PodShape(4000, 1, 500),
    PodShape(6000, 1, 800),
    PodShape(8000, 1, 1000),
    PodShape(16000, 2, 1000),
    PodShape(3000),
    PodShape(2000, 1, 500, ("T4",)),
]


def cluster() -> list[NodeState]:
    return [
        NodeState.empty("n-3", "T4", 32000, 1 << 20, 2),
        NodeState.empty("n-1", "G2", 64000, 1 << 20, 4),
        NodeState.empty("n-2", "P100", 16000, 1 << 20, 2),
        NodeState.empty("n-0", "G2", 64000, 1 << 20, 4),
    ]


def pods(n: int, seed: int = 0) -> list[TracePod]:
    rng = random.Random(seed)
    return [TracePod(f"p-{i:03d}", rng.choice(SHAPES)) for i in range(n)]


def test_prepare_is_seeded_and_tunes_up_to_the_inflation_target() -> None:
    nodes, trace = cluster(), pods(10)
    a, b, c = prepare(nodes, trace, 42), prepare(nodes, trace, 42), prepare(nodes, trace, 43)
    assert a == b
    assert [p.name for p in a.pods] != [p.name for p in c.pods]
    assert a.capacity_milli == 12000
    total = sum(p.shape.total_gpu_milli for p in a.pods)
    # copies are added until the next one would pass 1.3 x capacity (checked on its per-GPU share)
    assert 1.3 * 12000 - 1000 < total <= 1.3 * 12000 + 1000
    assert any("-tuned-" in p.name for p in a.pods)
    assert a.typical == typical_pods(p.shape for p in trace)  # from the original trace only
    assert sorted(n.name for n in a.nodes) == ["n-0", "n-1", "n-2", "n-3"]


def test_prepare_drops_pods_above_the_target_and_inflation_zero_keeps_the_trace() -> None:
    nodes, trace = cluster(), pods(60)
    down = prepare(nodes, trace, 1, inflation=0.5)
    assert sum(p.shape.total_gpu_milli for p in down.pods) <= 0.5 * 12000
    same = prepare(nodes, trace, 1, inflation=0.0)
    assert sorted(p.name for p in same.pods) == [p.name for p in trace]
    with pytest.raises(ValueError, match="inflation"):
        prepare(nodes, trace, 1, inflation=-1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), policy=st.sampled_from(list(PolicyName)))
def test_memoised_engine_decides_exactly_like_the_plain_cycle(seed: int, policy: PolicyName) -> None:
    workload = prepare(cluster(), pods(25, seed), seed)
    engine = Engine(workload.nodes, make_policy(policy, workload.typical, seed))
    plain_plugin = make_policy(policy, workload.typical, seed)
    plain = list(workload.nodes)
    for pod in workload.pods:
        expected = schedule(plain, pod.shape, plain_plugin)
        got = engine.place(pod.shape)
        if expected is None:
            assert got is None
            continue
        assert got is not None
        index, gpus = got
        assert (plain[index].name, gpus) == (expected.node, expected.gpus)
        assert fits(plain[index], pod.shape)
        plain[index] = plain[index].place(pod.shape, gpus)
    assert engine.nodes == plain


def test_run_records_every_arrival_and_never_overcommits() -> None:
    workload = prepare(cluster(), pods(30), 7)
    for policy in PolicyName:
        result = run(workload, policy, 7)
        assert len(result.arrived_milli) == len(workload.pods)
        assert all(a >= b for a, b in zip(result.arrived_milli, result.allocated_milli, strict=True))
        assert 0.0 < result.final_allocation_ratio <= 1.0
        assert result.failed == sum(
            1
            for i, p in enumerate(workload.pods)
            if (result.allocated_milli[i] - (result.allocated_milli[i - 1] if i else 0)) != p.shape.total_gpu_milli
        )


def test_discrete_curve_buckets_like_the_artifact() -> None:
    capacity = 1000  # 10 milli = 1 %
    arrived = [4, 6, 10, 16, 30]  # 0.4% -> 0, 0.6% -> 1, 1.0% -> 1, 1.6% -> 2, 3.0% -> 3
    allocated = [4, 6, 10, 10, 20]
    curve = dict(discrete_curve(arrived, allocated, capacity))
    assert curve[0] == pytest.approx(0.004)
    assert curve[1] == pytest.approx(0.008)  # mean of 0.6% and 1.0%
    assert curve[2] == pytest.approx(0.01)
    assert curve[3] == pytest.approx(0.02)
    assert curve[4] == pytest.approx(0.02)  # empty bucket borrows its neighbours (3 and 5)
    assert 6 not in curve
    with pytest.raises(ValueError, match="capacity"):
        discrete_curve([1], [1], 0)
    assert mean_curves([[(0, 0.2), (1, 0.4)], [(1, 0.6)]]) == [(1, pytest.approx(0.5))]
    assert mean_curves([]) == []
    assert published_final([], "06-FGD") is None


def test_subsample_scales_the_pod_list_with_the_cluster() -> None:
    nodes = [NodeState.empty(f"n-{i}", "T4", 1000, 1000, 1) for i in range(10)]
    few_nodes, few_pods = subsample(nodes, pods(100), 5, seed=3)
    assert len(few_nodes) == 5 and len(few_pods) == 50
    assert [n.name for n in few_nodes] == sorted(n.name for n in few_nodes)
