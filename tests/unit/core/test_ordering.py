"""Ordering policies: hand-checked orders, seed 000's weight interleave, errors and determinism."""

from __future__ import annotations

import math

import pytest
from gpulane_core.model import JobId
from gpulane_core.ordering import OrderingPolicy, TurnStats, interleave, order, weight_of
from hypothesis import given
from hypothesis import strategies as st


def _s(name: str, **kw: float) -> TurnStats:
    arrival = kw.pop("arrival_s", 0.0)
    return TurnStats(JobId(name), arrival, **kw)  # type: ignore[arg-type]


def test_fifo_and_pack_follow_arrival_with_name_ties() -> None:
    stats = [_s("c", arrival_s=2), _s("b", arrival_s=1), _s("a", arrival_s=1)]
    assert order("fifo", stats) == ["a", "b", "c"]
    assert order(OrderingPolicy.PACK, stats) == ["a", "b", "c"]


def test_srtf_least_remaining_first() -> None:
    stats = [_s("a", remaining_s=30), _s("b", remaining_s=5), _s("c", remaining_s=10)]
    assert order("srtf", stats) == ["b", "c", "a"]


def test_fair_least_attained_first() -> None:
    stats = [_s("a", attained_s=30), _s("b", attained_s=5, arrival_s=3), _s("c", attained_s=5, arrival_s=1)]
    assert order("fair", stats) == ["c", "b", "a"]


def test_priority_groups_come_first() -> None:
    stats = [_s("a", arrival_s=0), TurnStats(JobId("b"), 5.0, priority=10)]
    assert order("fifo", stats) == ["b", "a"]


def test_weight_seed_example_d_c_a_b_gives_d_b_c_a() -> None:
    # weights: D = 0.9/1 = 0.9, C = 0.6/1 = 0.6, A = 0.5/2 = 0.25, B = 0.2/2 = 0.1 -> D > C > A > B
    stats = [
        _s("A", compute_s=5, idle_s=5, penalty_s=2),
        _s("B", compute_s=2, idle_s=8, penalty_s=2),
        _s("C", compute_s=6, idle_s=4, penalty_s=1),
        _s("D", compute_s=9, idle_s=1, penalty_s=1),
    ]
    assert order("weight", stats) == ["D", "B", "C", "A"]


def test_weight_ties_prefer_smaller_penalty_and_zero_penalty_is_infinite() -> None:
    # x: 0.5/1 = 0.5, y: 1.0/2 = 0.5 (tie -> x, smaller penalty, ranks higher); z: no penalty -> inf
    x = _s("x", compute_s=1, idle_s=1, penalty_s=1)
    y = _s("y", compute_s=2, idle_s=0, penalty_s=2)
    z = _s("z", compute_s=1, idle_s=1, penalty_s=0)
    assert weight_of(z) == math.inf
    assert weight_of(_s("w")) == math.inf  # nothing known at all
    # ranking z > x > y -> z, y, x
    assert order("weight", [x, y, z]) == ["z", "y", "x"]


def test_interleave_odd_and_empty() -> None:
    assert interleave([JobId(c) for c in "abcde"]) == ["a", "e", "b", "d", "c"]
    assert interleave([]) == []


def test_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match="unknown policy 'lifo'"):
        order("lifo", [])


def test_duplicate_job_rejected() -> None:
    with pytest.raises(ValueError, match="more than once"):
        order("fifo", [_s("a"), _s("a")])


_stat = st.builds(
    TurnStats,
    job=st.text("abcdefgh", min_size=1, max_size=4).map(JobId),
    arrival_s=st.floats(0, 100),
    priority=st.integers(0, 2),
    attained_s=st.floats(0, 100),
    remaining_s=st.floats(0, 100),
    compute_s=st.floats(0, 100),
    idle_s=st.floats(0, 100),
    penalty_s=st.floats(0, 10),
)


@given(st.lists(_stat, max_size=12, unique_by=lambda s: s.job), st.sampled_from(list(OrderingPolicy)))
def test_every_policy_is_a_permutation_independent_of_input_order(
    stats: list[TurnStats], policy: OrderingPolicy
) -> None:
    result = order(policy, stats)
    assert sorted(result) == sorted(s.job for s in stats)
    assert order(policy, list(reversed(stats))) == result
