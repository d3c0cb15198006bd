"""schedule_cycle: ordering, placement policies, backfill, preemption and unschedulable messages."""

from __future__ import annotations

import pytest
from gpulane_core.cluster import ClusterState
from gpulane_core.model import Gpu, Job, JobClass, JobId, Node, NodeName
from gpulane_core.scheduler import PendingJob, SchedulerConfig, nodes_to_find, schedule_cycle
from gpulane_core.status import Code

GI = 1024


def _node(name: str, gpus: int = 2, mem_gi: int = 16, model: str = "A100") -> Node:
    return Node(NodeName(name), tuple(Gpu(i, f"{name}-uuid{i}", model, mem_gi * GI) for i in range(gpus)))


def _job(name: str, p_gi: float, e_gi: float, **kw: object) -> Job:
    return Job(JobId(name), int(p_gi * GI), int(e_gi * GI), **kw)  # type: ignore[arg-type]


def _pending(*jobs: Job) -> list[PendingJob]:
    return [PendingJob(j, queued_at_s=float(i)) for i, j in enumerate(jobs)]


def _where(result_state: ClusterState, job: str) -> tuple[str, int]:
    p = result_state.placements[JobId(job)]
    return p.node, p.first.index


def test_gpulane_packs_onto_used_gpu_binpack_too_spread_does_not() -> None:
    state = ClusterState.of([_node("a"), _node("b")])
    first = schedule_cycle(state, _pending(_job("j1", 2, 4)), SchedulerConfig(), 0.0).state
    assert _where(first, "j1") == ("a", 0)
    for policy, expected in (("gpulane", ("a", 0)), ("binpack", ("a", 0)), ("spread", ("b", 0))):
        res = schedule_cycle(first, _pending(_job("j2", 2, 4)), SchedulerConfig(placement=policy), 1.0)
        assert _where(res.state, "j2") == expected, policy
        assert res.state.check_invariants() == []


def test_multi_gpu_job_takes_the_node_with_whole_gpus() -> None:
    state = ClusterState.of([_node("a"), _node("b")])
    res = schedule_cycle(
        state, _pending(_job("small", 2, 2), _job("big", 4, 4, gpus=2)), SchedulerConfig(), 0.0
    )
    assert _where(res.state, "small") == ("a", 0)  # gpulane keeps b's two whole GPUs together
    big = res.state.placements[JobId("big")]
    assert big.node == "b" and [c.index for c in big.gpus] == [0, 1] and big.exclusive


def test_unschedulable_names_the_shortfall() -> None:
    state = ClusterState.of([_node("node-a", gpus=2, mem_gi=40)])
    res = schedule_cycle(state, _pending(_job("fill0", 30, 2), _job("fill1", 10, 6)), SchedulerConfig(), 0.0)
    # gpu0: 32Gi used, 8 free; gpu1: 16 used, 24 free
    res = schedule_cycle(res.state, _pending(_job("x", 30, 8)), SchedulerConfig(), 1.0)
    status = res.unschedulable[JobId("x")]
    assert status.code is Code.UNSCHEDULABLE
    assert (
        status.message
        == "no GPU can hold 30Gi persistent + 8Gi ephemeral; largest free is 24Gi on node-a/gpu1"
    )
    assert res.queue == ("x",)


def test_unresolvable_when_larger_than_every_gpu_or_type_missing() -> None:
    state = ClusterState.of([_node("a")])
    res = schedule_cycle(
        state,
        _pending(
            _job("huge", 12, 8),
            _job("typed", 1, 1, gpu_types=frozenset({"H100"})),
            _job("wide", 1, 1, gpus=3),
        ),
        SchedulerConfig(),
        0.0,
    )
    codes = {j: s.code for j, s in res.unschedulable.items()}
    assert set(codes.values()) == {Code.UNSCHEDULABLE_AND_UNRESOLVABLE}
    assert "largest GPU holds 16Gi" in res.unschedulable[JobId("huge")].message
    assert "no GPU of type H100 exists (cluster has: A100)" in res.unschedulable[JobId("typed")].message
    assert "no node has 3 GPUs" in res.unschedulable[JobId("wide")].message


def test_backfill_places_later_jobs_and_strict_order_blocks_them() -> None:
    state = ClusterState.of([_node("a", gpus=1)])
    jobs = _pending(_job("first", 4, 4), _job("too-big", 8, 6), _job("small", 1, 1))
    with_backfill = schedule_cycle(state, jobs, SchedulerConfig(), 0.0)
    assert [p.job for p in with_backfill.placements] == ["first", "small"]
    assert with_backfill.queue == ("too-big",)
    strict = schedule_cycle(state, jobs, SchedulerConfig(backfill=False), 0.0)
    assert [p.job for p in strict.placements] == ["first"]
    assert strict.queue == ("too-big", "small")
    assert strict.unschedulable[JobId("small")].code is Code.WAIT


def test_ordering_policy_decides_who_gets_the_last_room() -> None:
    state = ClusterState.of([_node("a", gpus=1)])
    long = _job("long", 10, 4, iteration_s=1.0, iterations=1000)
    short = _job("short", 10, 4, iteration_s=1.0, iterations=10)
    pending = [PendingJob(long, 0.0), PendingJob(short, 1.0)]
    assert [p.job for p in schedule_cycle(state, pending, SchedulerConfig("fifo"), 2.0).placements] == [
        "long"
    ]
    assert [p.job for p in schedule_cycle(state, pending, SchedulerConfig("srtf"), 2.0).placements] == [
        "short"
    ]


def test_guaranteed_job_preempts_fewest_lowest_priority_best_effort() -> None:
    state = ClusterState.of([_node("a", gpus=1)])
    be = JobClass.BEST_EFFORT
    res = schedule_cycle(
        state,
        _pending(
            _job("be-low", 6, 1, job_class=be, priority=0),
            _job("be-high", 6, 1, job_class=be, priority=5),
            _job("be-small", 1, 1, job_class=be, priority=0),
        ),
        SchedulerConfig(),
        0.0,
    )
    assert len(res.placements) == 3  # 13 + lanes 1 -> 14 committed of 16
    res = schedule_cycle(res.state, _pending(_job("g", 6, 2)), SchedulerConfig(), 1.0)
    assert [(p.victim, p.for_job) for p in res.preemptions] == [("be-low", "g")]
    assert JobId("g") in res.state.placements and JobId("be-low") not in res.state.placements
    assert res.state.check_invariants() == []
    off = schedule_cycle(res.state, _pending(_job("g2", 6, 2)), SchedulerConfig(preemption=False), 2.0)
    assert off.preemptions == () and off.queue == ("g2",)


def test_best_effort_never_preempts() -> None:
    state = ClusterState.of([_node("a", gpus=1)])
    res = schedule_cycle(
        state, _pending(_job("be", 10, 4, job_class=JobClass.BEST_EFFORT)), SchedulerConfig(), 0.0
    )
    res = schedule_cycle(
        res.state, _pending(_job("be2", 10, 4, job_class=JobClass.BEST_EFFORT)), SchedulerConfig(), 1
    )
    assert res.preemptions == () and res.queue == ("be2",)


def test_bad_config_and_unknown_placement_are_named() -> None:
    state = ClusterState.of([_node("a")])
    with pytest.raises(ValueError, match=r"ordering: .*unknown policy 'nope'"):
        schedule_cycle(state, [], SchedulerConfig(ordering="nope"), 0.0)
    with pytest.raises(ValueError, match="unknown placement policy 'best'"):
        schedule_cycle(state, [], SchedulerConfig(placement="best"), 0.0)
    assert SchedulerConfig(percentage_of_nodes_to_score=101).validate() == [
        "percentage_of_nodes_to_score: must be within 0..100, got 101"
    ]


def test_malformed_and_duplicate_jobs() -> None:
    state = ClusterState.of([_node("a")])
    res = schedule_cycle(state, _pending(Job(JobId("neg"), -1, 5)), SchedulerConfig(), 0.0)
    assert "persistent_mib: must not be negative" in res.unschedulable[JobId("neg")].message
    with pytest.raises(ValueError, match="queued twice"):
        schedule_cycle(state, _pending(_job("a", 1, 1), _job("a", 1, 1)), SchedulerConfig(), 0.0)


def test_nodes_to_find_matches_kube_scheduler() -> None:
    assert nodes_to_find(50, 0) == 50
    assert nodes_to_find(1000, 0) == 420  # 50 - 1000/125 = 42 %
    assert nodes_to_find(5000, 0) == 500  # 50 - 40 = 10 %
    assert nodes_to_find(20_000, 0) == 1000  # floor of 5 %
    assert nodes_to_find(1000, 100) == 1000
    assert nodes_to_find(1000, 1) == 100


def test_large_cluster_search_stops_after_enough_feasible_nodes() -> None:
    """Above 100 nodes the search scores a bounded set from a rotating start (kube-scheduler style)."""
    from dataclasses import replace

    from gpulane_core.registry import Registry, default_registry

    state = ClusterState.of([_node(f"n{i:03d}", gpus=1) for i in range(150)])
    pending = _pending(*[_job(f"j{k}", 1, 1) for k in range(5)])
    spread = default_registry().profile("spread")
    plain = Registry({"spread": lambda: replace(spread, symmetric=False)})
    res = schedule_cycle(state, pending, SchedulerConfig(placement="spread"), 0.0, registry=plain)
    assert res.state.check_invariants() == [] and len(res.placements) == 5
    # 150 nodes -> 100 feasible nodes per job; the start rotates past them, so jobs land apart.
    assert len({p.node for p in res.placements}) == 5
    full = schedule_cycle(
        state,
        pending,
        SchedulerConfig(placement="spread", percentage_of_nodes_to_score=100),
        0.0,
        registry=plain,
    )
    assert [p.node for p in full.placements] == ["n000", "n001", "n002", "n003", "n004"]
