"""The six published placement policies and gpulane's, on small hand-computed clusters."""

from __future__ import annotations

import random

import pytest
from gpulane_core.fragmentation.baselines import (
    BestFitPolicy,
    DotProductPolicy,
    GpuClusteringPolicy,
    GpuPackingPolicy,
    RandomPolicy,
)
from gpulane_core.fragmentation.family import PolicyName, make_policy
from gpulane_core.fragmentation.fgd import FgdPolicy, after_states
from gpulane_core.fragmentation.frag import FragModel
from gpulane_core.fragmentation.lanes_policy import FgdBalancePolicy, cpu_per_gpu_milli, stranded_milli
from gpulane_core.fragmentation.policy import (
    EMPTY_CYCLE,
    Decision,
    best_fit_gpus,
    exclusive_gpus,
    filter_node,
    fits,
    minmax_normalize,
    schedule,
)
from gpulane_core.fragmentation.types import NodeState, PodShape, TypicalPod
from gpulane_core.registry import default_registry
from gpulane_core.status import Code

SHARE = PodShape(1000, 1, 500)
WHOLE = PodShape(1000, 1, 1000)


def node(name: str, lefts: tuple[int, ...], cpu: int = 64000, model: str = "T4", **kw: object) -> NodeState:
    return NodeState(name, model, cpu, 1 << 20, lefts, **kw)  # type: ignore[arg-type]


def test_filter_checks_cpu_memory_model_and_gpu_fit() -> None:
    n = node("a", (1000, 300), cpu=4000)
    assert fits(n, SHARE) and filter_node(n, SHARE).ok
    assert not fits(n, PodShape(5000, 1, 500))
    assert "cpu" in filter_node(n, PodShape(5000, 1, 500)).message
    assert not fits(n, PodShape(1000, 2, 1000))
    assert "fewer than 2 GPUs" in filter_node(n, PodShape(1000, 2, 1000)).message
    wrong_model = filter_node(n, PodShape(1000, 1, 500, ("V100M32",)))
    assert wrong_model.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    tight = NodeState("m", "T4", 64000, 10, (1000,))
    assert not fits(tight, PodShape(1000, memory_mib=11))
    assert "memory" in filter_node(tight, PodShape(1000, memory_mib=11)).message
    assert fits(n, PodShape(1000))  # CPU-only pods need no GPU


def test_gpu_selection_best_fit_and_exclusive() -> None:
    n = node("a", (1000, 600, 500, 1000))
    assert best_fit_gpus(n, SHARE) == (2,)  # least free that fits
    assert best_fit_gpus(n, PodShape(1000, 1, 550)) == (1,)
    assert best_fit_gpus(n, PodShape(1000, 2, 1000)) == (0, 3)  # lowest-index free GPUs
    assert exclusive_gpus(n, PodShape(1000, 3, 1000)) == ()
    assert best_fit_gpus(n, PodShape(1000)) == ()


def test_dot_product_score() -> None:
    # dot = (64000/128000)(32000/128000) + (2000/8000)(500/8000) = 0.140625 -> 100 * (1 - 0.0703125)
    score = DotProductPolicy().score(node("a", (1000, 1000)), PodShape(32000, 1, 500), EMPTY_CYCLE)
    assert score.score == 92 and score.gpus == (0,)


@pytest.mark.parametrize(
    ("lefts", "pod", "expected"),
    [
        ((1000, 1000), SHARE, 31),  # idle 2-GPU node: max(33 - 2, 2)
        ((1000,) * 8, SHARE, 25),  # idle 8-GPU node: max(33 - 8, 8)
        ((600, 1000), SHARE, 94),  # shares a used GPU with 60% free: 100 - 60 // 10
        ((600, 1000), WHOLE, 49),  # needs one free GPU on a used node: 50 - 1
        ((600, 1000), PodShape(1000), 0),  # CPU-only pods: 0
    ],
)
def test_gpu_packing_score(lefts: tuple[int, ...], pod: PodShape, expected: int) -> None:
    assert GpuPackingPolicy().score(node("a", lefts), pod, EMPTY_CYCLE).score == expected


@pytest.mark.parametrize(
    ("affinities", "expected"),
    [
        ((("share-gpu", 2),), 12 + 75),  # only this class; 25 * 4000 // 8000 = 12
        ((("1-gpu", 1), ("share-gpu", 2)), 12 + 50),  # this class among others
        ((("1-gpu", 1),), 12),  # only other classes
        ((), 12 + 25),  # no class yet
    ],
)
def test_gpu_clustering_score(affinities: tuple[tuple[str, int], ...], expected: int) -> None:
    n = node("a", (1000, 1000, 1000, 1000, 0, 0, 0, 0), affinities=affinities)
    assert GpuClusteringPolicy().score(n, SHARE, EMPTY_CYCLE).score == expected
    assert GpuClusteringPolicy().score(n, PodShape(1000), EMPTY_CYCLE).score == 0


def test_best_fit_score_and_min_max_normalisation() -> None:
    # s = 0.5 * 32000/128000 + 0.5 * 1500/8000 = 0.21875 -> 78
    assert BestFitPolicy().score(node("a", (1000, 1000)), PodShape(32000, 1, 500), EMPTY_CYCLE).score == 78
    assert minmax_normalize([78, 50, 64]) == [100, 0, 50]
    assert minmax_normalize([7, 7]) == [0, 0]
    assert minmax_normalize([]) == []


def test_random_policy_is_seeded_and_only_picks_gpus_that_fit() -> None:
    nodes = [node("a", (1000, 400, 700)), node("b", (1000,))]
    picks = set()
    for seed in range(40):
        first = schedule(nodes, SHARE, RandomPolicy(random.Random(seed)))
        again = schedule(nodes, SHARE, RandomPolicy(random.Random(seed)))
        assert first == again
        assert first is not None
        picks.add((first.node, first.gpus))
    assert picks == {("a", (0,)), ("a", (2,)), ("b", (0,))}  # GPU a/1 (400) never fits 500


def test_fgd_prefers_the_gpu_that_keeps_shares_usable() -> None:
    # one typical pod needing 500: (1000, 600) has no fragment. Putting 400 on GPU0 keeps both GPUs
    # >= 500 (delta 0, score 50); best-fit would take GPU1 and leave a useless 200 (delta -200, 45).
    model = FragModel((TypicalPod(PodShape(1000, 1, 500), 1.0),))
    n = node("a", (1000, 600), cpu=4000)
    pod = PodShape(1000, 1, 400)
    assert FgdPolicy(model).score(n, pod, EMPTY_CYCLE).score == 50
    assert FgdPolicy(model).score(n, pod, EMPTY_CYCLE).gpus == (0,)
    assert best_fit_gpus(n, pod) == (1,)
    assert [g for g, _ in after_states(n, pod)] == [(0,), (1,)]
    assert after_states(n, PodShape(1000, 2, 1000)) == []
    assert after_states(n, PodShape(10)) == [((), (1000, 600))]


def test_schedule_breaks_ties_by_node_order_and_skips_infeasible_nodes() -> None:
    nodes = [node("z", (1000,), cpu=100), node("b", (1000,)), node("a", (1000,))]
    decision = schedule(nodes, SHARE, DotProductPolicy())
    assert decision is not None and decision.node == "b"  # z does not fit, b comes before a
    assert schedule([node("z", (100,))], SHARE, DotProductPolicy()) is None


def test_gpulane_without_balance_is_fgd() -> None:
    model = FragModel((TypicalPod(PodShape(1000, 1, 500), 0.7), TypicalPod(PodShape(1000, 1, 1000), 0.3)))
    lane, fgd = FgdBalancePolicy(model, balance=0.0), FgdPolicy(model)
    pod = PodShape(1000, 1, 450)
    for lefts in [(1000, 1000), (1000, 550), (550, 550), (450, 1000)]:
        n = node("a", lefts)
        assert lane.score(n, pod, EMPTY_CYCLE) == fgd.score(n, pod, EMPTY_CYCLE)
    with pytest.raises(ValueError, match="balance"):
        FgdBalancePolicy(model, balance=-1.0)


def test_gpulane_keeps_cpu_for_the_gpus_that_need_it() -> None:
    # typical pod: 4 cores per whole GPU -> rho = 4 milli-CPU per milli-GPU
    model = FragModel((TypicalPod(PodShape(4000, 1, 1000), 1.0),))
    assert cpu_per_gpu_milli(model.typical) == pytest.approx(4.0)
    assert stranded_milli(2000, 6000, 4.0) == pytest.approx(500.0)
    assert stranded_milli(2000, 40000, 4.0) == 0.0
    poor, rich = node("a", (1000, 1000), cpu=12000), node("b", (1000, 1000), cpu=40000)
    cpu_pod = PodShape(6000)
    # FGD sees no change on either node (both still fit a typical pod): a tie, node order decides
    fgd = FgdPolicy(model)
    assert fgd.score(poor, cpu_pod, EMPTY_CYCLE).score == fgd.score(rich, cpu_pod, EMPTY_CYCLE).score == 50
    assert schedule([poor, rich], cpu_pod, fgd) == Decision("a", (), 50)
    # fgd-balance sees that 6 cores off node a leave 500 milli-GPU without CPU to feed them
    lane = FgdBalancePolicy(model)
    assert lane.score(poor, cpu_pod, EMPTY_CYCLE).score == 37  # floor(100 sigmoid(-0.5))
    assert schedule([poor, rich], cpu_pod, lane) == Decision("b", (), 50)


def test_registry_parses_names_and_builds_every_policy() -> None:
    parse = default_registry().parse
    assert parse("fgd, BestFit,fgd") == ("fgd", "bestfit")
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        parse("fgd,nope")
    with pytest.raises(ValueError, match="no policy"):
        parse(" , ")
    typical = (TypicalPod(SHARE, 1.0),)
    for name in PolicyName:
        plugin = make_policy(name, typical, seed=1)
        assert plugin.name == name.value
        assert schedule([node("a", (1000,))], SHARE, plugin) is not None
