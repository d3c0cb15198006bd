from __future__ import annotations

from dataclasses import replace

from gpulane_core.cluster import ClusterState
from gpulane_core.model import Gpu, Job, JobId, LaneId, Node, NodeName
from gpulane_core.podcontract import from_annotations, to_annotations
from gpulane_operator.assignment import from_placement
from gpulane_operator.crd import Reason
from gpulane_operator.inventory import NodeInventory
from gpulane_operator.snapshot import SnapshotMemo, build
from hypothesis import given, settings
from hypothesis import strategies as st

NODE = Node(NodeName("n1"), (Gpu(0, "GPU-0", "T4", 16384), Gpu(1, "GPU-1", "T4", 16384)))
INVENTORY = {NODE.name: NodeInventory(NODE, 256, True, "gpunode")}

jobs_strategy = st.lists(
    st.tuples(st.integers(0, 6000), st.integers(0, 9000), st.sampled_from([1, 1, 1, 2])), min_size=1, max_size=14
)


def admit_all(specs: list[tuple[int, int, int]]) -> ClusterState:
    state = ClusterState.of([NODE])
    for i, (p, e, g) in enumerate(specs):
        job = Job(JobId(f"ns/j{i}"), p, max(e, 1 if p == 0 else e), gpus=g)
        option = next(iter(state.candidates(job, NODE.name)), None)
        if option is not None:
            state = state.reserve(job, option)
    return state


@settings(max_examples=60, deadline=None)
@given(jobs_strategy)
def test_lanes_rebuilt_from_pod_annotations_match_the_core(specs: list[tuple[int, int, int]]) -> None:
    state = admit_all(specs)
    written = [
        from_annotations(job, to_annotations(from_placement(state.jobs[job], placement, 1)))
        for job, placement in state.placements.items()
    ]
    snap = build(INVENTORY, written)
    assert snap.problems == ()
    assert snap.state.check_invariants() == []
    for index in (0, 1):
        rebuilt, original = snap.state.gpu_lanes(NODE.name, index), state.gpu_lanes(NODE.name, index)
        assert rebuilt.committed_mib == original.committed_mib
        assert {t.job for t in rebuilt.tenants} == {t.job for t in original.tenants}
        assert rebuilt.next_lane >= len(rebuilt.lanes)


def test_placements_on_gone_nodes_and_unhealthy_gpus_are_lost() -> None:
    state = admit_all([(1024, 1024, 1), (1024, 1024, 1)])
    written = [from_placement(state.jobs[j], p, 1) for j, p in state.placements.items()]
    assert build({}, written).lost[0].reason is Reason.NODE_LOST
    sick = Node(NODE.name, (Gpu(0, "GPU-0", "T4", 16384, healthy=False), NODE.gpus[1]))
    snap = build({NODE.name: NodeInventory(sick, 256, True, "gpunode")}, written)
    assert {item.reason for item in snap.lost} == {Reason.GPU_LOST}
    assert "unhealthy" in snap.lost[0].message
    assert snap.state.gpu_lanes(NODE.name, 0).committed_mib == 4096  # still counted until the pods end


def test_cordoned_nodes_keep_their_lanes_but_take_no_new_jobs() -> None:
    state = admit_all([(1024, 1024, 1)])
    written = [from_placement(state.jobs[j], p, 1) for j, p in state.placements.items()]
    snap = build({NODE.name: NodeInventory(NODE, 256, False, "labels")}, written)
    assert snap.state.placements and not snap.schedulable.nodes


def test_a_node_not_ready_past_the_grace_loses_its_jobs_with_a_force_delete() -> None:
    state = admit_all([(1024, 1024, 1), (1024, 1024, 1)])
    written = [from_placement(state.jobs[j], p, 1) for j, p in state.placements.items()]
    since = 1_800_000_000.0
    not_ready = {NODE.name: NodeInventory(NODE, 256, False, "gpunode", not_ready_since=since)}
    early = build(not_ready, written, now=since + 19.0, loss_grace_s=20.0)
    assert early.lost == ()
    assert early.loss_deadlines == {NODE.name: since + 20.0}  # the operator wakes itself then
    late = build(not_ready, written, now=since + 23.0, loss_grace_s=20.0)
    assert len(late.lost) == 2 and late.loss_deadlines == {}
    for item in late.lost:
        assert item.reason is Reason.NODE_LOST and item.force_delete and item.node == NODE.name
        assert item.message.startswith("node n1 has been NotReady for 23s (since 2027-01-15T08:00:00Z)")
    # The node exists: its memory stays counted (it is unschedulable anyway).
    assert late.state.gpu_lanes(NODE.name, 0).committed_mib + late.state.gpu_lanes(NODE.name, 1).committed_mib == 4096
    assert not late.schedulable.nodes
    # Without a clock (or a grace), NotReady alone loses nothing; GPU losses never force.
    assert build(not_ready, written).lost == ()
    sick = Node(NODE.name, (Gpu(0, "GPU-0", "T4", 16384, healthy=False), NODE.gpus[1]))
    gpu_lost = build({NODE.name: NodeInventory(sick, 256, True, "gpunode")}, written, now=since, loss_grace_s=20.0)
    assert gpu_lost.lost and not any(item.force_delete for item in gpu_lost.lost)


@settings(max_examples=40, deadline=None)
@given(st.lists(jobs_strategy, min_size=2, max_size=5))
def test_a_memo_carried_across_builds_never_changes_the_snapshot(rounds: list[list[tuple[int, int, int]]]) -> None:
    """Cycle after cycle the residents change; with the runtime's memo every build equals a fresh one."""
    memo = SnapshotMemo()
    for specs in rounds:
        state = admit_all(specs)
        written = [from_placement(state.jobs[job], p, 1) for job, p in state.placements.items()]
        fresh, memoized = build(INVENTORY, written), build(INVENTORY, written, memo=memo)
        assert memoized.problems == fresh.problems
        assert memoized.state.placements == fresh.state.placements
        for index in (0, 1):
            assert memoized.state.gpu_lanes(NODE.name, index) == fresh.state.gpu_lanes(NODE.name, index)
        assert set(memo.placements) == set(written)  # only what this build used is kept


def test_a_memo_hit_keeps_a_broken_gpus_problems() -> None:
    """An over-committed GPU read from the memo is still reported, every cycle."""
    state = admit_all([(4000, 6000, 1), (4000, 6000, 1)])
    written = [from_placement(state.jobs[job], p, 1) for job, p in state.placements.items()]
    crowded = [replace(a, gpu_indices=(0,), gpu_uuids=("GPU-0",), lane=LaneId(f"lane-{i + 5}")) for i, a in enumerate(written)]
    crowded += [replace(crowded[0], job=JobId("ns/extra"), lane=LaneId("lane-9"))]
    memo = SnapshotMemo()
    first, second = build(INVENTORY, crowded, memo=memo), build(INVENTORY, crowded, memo=memo)
    assert first.problems and second.problems == first.problems
