"""Properties of the fragmentation math and of one scheduling cycle, over random small states."""

from __future__ import annotations

import pytest
from gpulane_core.fragmentation.family import PolicyName, make_policy
from gpulane_core.fragmentation.fgd import fgd_score
from gpulane_core.fragmentation.frag import FragModel, node_frag, node_pod_frag, typical_pods
from gpulane_core.fragmentation.policy import fits, schedule
from gpulane_core.fragmentation.types import NodeState, PodShape
from hypothesis import given, settings
from hypothesis import strategies as st

MODELS = ("T4", "G2", "V100M16")

shares = st.sampled_from([0, 50, 110, 160, 230, 320, 470, 650, 810, 1000])
pods = st.one_of(
    st.builds(PodShape, st.sampled_from([1000, 4000, 12000, 32000])),
    st.builds(
        lambda cpu, share, types: PodShape(cpu, 1, share, types),
        st.sampled_from([1000, 4000, 12000]),
        st.sampled_from([110, 320, 470, 810, 1000]),
        st.sampled_from([(), ("T4",), ("G2", "V100M16")]),
    ),
    st.builds(lambda k: PodShape(8000 * k, k, 1000), st.sampled_from([2, 4, 8])),
)
nodes = st.builds(
    lambda i, model, cpu, lefts: NodeState(f"n-{i}", model, cpu, 1 << 20, tuple(lefts)),
    st.integers(0, 999),
    st.sampled_from(MODELS),
    st.integers(0, 64) .map(lambda c: c * 1000),
    st.lists(shares, min_size=1, max_size=8),
)


@settings(max_examples=100, deadline=None)
@given(node=nodes, pod=pods)
def test_fragment_is_between_zero_and_the_free_share(node: NodeState, pod: PodShape) -> None:
    assert 0 <= node_pod_frag(node, pod) <= node.gpu_milli_left_total


@settings(max_examples=100, deadline=None)
@given(states=st.lists(nodes, min_size=1, max_size=6), workload=st.lists(pods, min_size=1, max_size=30))
def test_memoised_model_equals_the_definition(states: list[NodeState], workload: list[PodShape]) -> None:
    typical = typical_pods(workload, 0.95)
    model = FragModel(typical)
    assert sum(t.popularity for t in typical) == pytest.approx(1.0)
    for node in states + states:  # the second pass is served from the memo
        assert model.node(node) == pytest.approx(node_frag(node, typical))


@given(a=st.floats(-1e5, 1e5), b=st.floats(-1e5, 1e5))
def test_fgd_score_is_monotone_and_bounded(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 0 <= fgd_score(low) <= fgd_score(high) <= 100


@settings(max_examples=60, deadline=None)
@given(
    states=st.lists(nodes, min_size=1, max_size=6, unique_by=lambda n: n.name),
    pod=pods,
    policy=st.sampled_from(list(PolicyName)),
)
def test_a_cycle_only_ever_chooses_a_node_and_gpus_that_fit(
    states: list[NodeState], pod: PodShape, policy: PolicyName
) -> None:
    plugin = make_policy(policy, typical_pods([pod]), seed=3)
    decision = schedule(states, pod, plugin)
    if decision is None:
        assert not any(fits(n, pod) for n in states)
        return
    chosen = next(n for n in states if n.name == decision.node)
    assert fits(chosen, pod)
    after = chosen.place(pod, decision.gpus)  # raises if the GPUs cannot take the pod
    assert after.gpu_milli_left_total == chosen.gpu_milli_left_total - pod.total_gpu_milli
