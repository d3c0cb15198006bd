from __future__ import annotations

from gpulane_core.model import JobId, NodeName
from gpulane_core.scheduler import SchedulerConfig, schedule_cycle
from gpulane_operator.assignment import PodRecord, from_placement
from gpulane_operator.crd import JobRecord, parse_job
from gpulane_operator.decide import plan, prepare
from gpulane_operator.inventory import merge, parse_node
from opfakes import job_body, node_body


def inventory(*names: str, gpus: int = 1):  # type: ignore[no-untyped-def]
    return merge({}, {n: parse_node(node_body(n, gpus)) for n in names})


def jobs(*bodies: dict) -> dict[JobId, JobRecord]:  # type: ignore[type-arg]
    return {r.id: r for r in (parse_job(b) for b in bodies)}


def test_jobs_with_a_pod_are_never_queued_again() -> None:
    js = jobs(job_body("a"), job_body("b"))
    rec = js[JobId("ns/a")]
    assert rec.job is not None
    inv = inventory("n1")
    from gpulane_core.cluster import ClusterState

    placement = next(ClusterState.of([inv[NodeName("n1")].node]).candidates(rec.job, NodeName("n1")))
    a = from_placement(rec.job, placement, 24)
    dying = PodRecord("ns", "a-gpulane", rec.id, "Running", "n1", True, False, a)
    prepared = prepare(js, {rec.id: dying}, {}, inv, {})
    assert [p.job.name for p in prepared.pending] == ["ns/b"]
    assert prepared.resumes == ()  # a pod being deleted is not resumed
    assert prepared.snapshot.state.gpu_lanes(NodeName("n1"), 0).committed_mib == 6144  # still counted


def test_preemptor_waits_and_nothing_else_lands_on_the_victims_node() -> None:
    be = job_body("be", "8Gi", "8Gi", cls="best-effort")
    js = jobs(be, job_body("g", "8Gi", "8Gi"))
    inv = inventory("n1")
    first = prepare(jobs(be), {}, {}, inv, {})
    r1 = schedule_cycle(first.snapshot.schedulable, first.pending, SchedulerConfig(), 0.0)
    (be_rec,) = jobs(be).values()
    placed = from_placement(be_rec.job, r1.placements[0], 64)  # type: ignore[arg-type]
    pods = {be_rec.id: PodRecord("ns", "be-gpulane", be_rec.id, "Running", "n1", False, False, placed)}
    js = {k: v for k, v in js.items() if k != be_rec.id} | {be_rec.id: parse_job({**be, "status": {"phase": "Running"}})}
    prepared = prepare(js, pods, {}, inv, {})
    result = schedule_cycle(prepared.snapshot.schedulable, prepared.pending, SchedulerConfig(), 1.0)
    assert [p.victim for p in result.preemptions] == ["ns/be"]
    decided = plan(prepared, result, js, pods, {})
    assert decided.creates == ()  # the victim's memory is free only once its pod is gone
    assert decided.waiting == {JobId("ns/g"): frozenset({JobId("ns/be")})}
    assert decided.unschedulable[0].reason.value == "Preempting"
    again = prepare(js, pods, {}, inv, decided.waiting)
    assert again.pending == ()  # not re-planned (no second victim) while the first is still there


def test_unschedulable_jobs_get_position_and_message_once() -> None:
    js = jobs(job_body("big", "40Gi", "8Gi"))
    inv = inventory("n1")
    prepared = prepare(js, {}, {}, inv, {})
    result = schedule_cycle(prepared.snapshot.schedulable, prepared.pending, SchedulerConfig(), 0.0)
    decided = plan(prepared, result, js, {}, {})
    (u,) = decided.unschedulable
    assert u.position == 1 and "largest GPU holds 16Gi" in u.message
    patched = {u.record.id: parse_job(job_body("big", "40Gi", "8Gi", status={
        "queuePosition": 1, "conditions": [{"type": "Scheduled", "status": "False", "reason": "Unschedulable", "message": u.message}]})) }
    assert plan(prepared, result, patched, {}, {}).unschedulable == ()


def test_fifo_ties_within_a_second_follow_the_order_the_watch_delivered() -> None:
    js = jobs(job_body("b-first", "8Gi", "8Gi"), job_body("a-second", "8Gi", "8Gi"))
    base = 1767225600.0
    seen = {JobId("ns/b-first"): base + 0.2, JobId("ns/a-second"): base + 0.7}
    prepared = prepare(js, {}, {}, inventory("n1"), {}, (), seen)
    result = schedule_cycle(prepared.snapshot.schedulable, prepared.pending, SchedulerConfig(), base + 1)
    assert [p.job for p in result.placements] == ["ns/b-first"]


def test_placed_jobs_without_a_pod_are_found_unless_this_process_is_busy_with_them() -> None:
    from gpulane_operator.decide import pods_lost_while_away

    running = {"phase": "Running"}
    js = jobs(
        job_body("gone", status=running), job_body("has-pod", status=running), job_body("assumed", status=running),
        job_body("busy", status={"phase": "Scheduled"}), job_body("queued"), job_body("done", status={"phase": "Succeeded"}),
    )  # fmt: skip
    rec = js[JobId("ns/has-pod")]
    assert rec.job is not None
    inv = inventory("n1")
    from gpulane_core.cluster import ClusterState

    placement = next(ClusterState.of([inv[NodeName("n1")].node]).candidates(rec.job, NodeName("n1")))
    pod = PodRecord("ns", "has-pod-gpulane", rec.id, "Running", "n1", False, False, from_placement(rec.job, placement, 24))
    lost = pods_lost_while_away(js, {rec.id: pod}, {JobId("ns/assumed")}, {JobId("ns/busy")})
    assert [r.id for r in lost] == ["ns/gone"]
