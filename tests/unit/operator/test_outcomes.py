"""What a job is told after each decision: windows, Events and failure rules, without I/O."""

from __future__ import annotations

from dataclasses import replace

from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from gpulane_core.podcontract import Assignment
from gpulane_core.scheduler import Preemption
from gpulane_operator import lifecycle, outcomes, statuses
from gpulane_operator.assignment import parse_pod
from gpulane_operator.crd import Reason, parse_job
from gpulane_operator.outcomes import AT_ONCE, QUEUED_WINDOW_S, SCHEDULED_WINDOW_S, EventPost
from gpulane_operator.snapshot import Lost
from opfakes import job_body, job_pod_body

NOW = 1767225601.0
A = Assignment(JobId("ns/a"), NodeName("n1"), (0,), ("GPU-0",), LaneId("lane-0"), 1024, 0, 1024, 4, JobClass.GUARANTEED)
REC = parse_job(job_body("a"))


def test_a_placement_waits_for_running_and_running_goes_out_at_once_with_no_second_event() -> None:
    placed = outcomes.placed(REC, A, NOW)
    assert placed.window_s == SCHEDULED_WINDOW_S and placed.event is not None
    assert placed.event.reason is Reason.PLACED and not placed.event.warning
    assert placed.body is not None
    running = lifecycle.sync(statuses.overlay(REC, placed.body), parse_pod(job_pod_body("Running")), NOW + 1)
    assert running is not None
    w = outcomes.synced(running)
    assert (w.window_s, w.event, w.completed) == (AT_ONCE, None, False)


def test_a_finished_pod_completes_the_job_and_a_vanished_one_warns_at_once() -> None:
    done = outcomes.synced(statuses.finished(REC, True, "exit 0", NOW))
    assert done.completed and done.window_s is None
    assert done.event == EventPost(Reason.SUCCEEDED, "exit 0")
    gone = lifecycle.after_pod_gone(statuses.overlay(REC, statuses.scheduled(REC, A, NOW)), NOW)
    assert gone is not None
    w = outcomes.synced(gone)
    assert w.window_s == AT_ONCE and w.event is not None and w.event.reason is Reason.POD_DELETED and w.event.warning


def test_a_waiting_job_is_told_late_and_warned_only_when_its_refusal_is_new() -> None:
    turn = outcomes.queued(REC, Reason.QUEUED, "behind 3 jobs", 4, NOW)
    assert turn.window_s == QUEUED_WINDOW_S and turn.event is None
    refusal = outcomes.queued(REC, Reason.UNSCHEDULABLE, "no GPU can hold 40Gi", 1, NOW)
    assert refusal.window_s is None  # a new reason is written promptly
    assert refusal.event == EventPost(Reason.UNSCHEDULABLE, "no GPU can hold 40Gi", warning=True)
    told = replace(REC, scheduled_reason=Reason.UNSCHEDULABLE.value, scheduled_message="no GPU can hold 40Gi")
    moved = outcomes.queued(told, Reason.UNSCHEDULABLE, "no GPU can hold 40Gi", 2, NOW)
    assert moved.window_s == QUEUED_WINDOW_S and moved.event is None  # only its position moved
    other = outcomes.queued(told, Reason.UNSCHEDULABLE, "no GPU can hold 40Gi on n2", 2, NOW)
    assert other.window_s is None and other.event is None  # same reason, new words: no second Event


def test_a_lost_node_fails_or_requeues_its_jobs_as_configured_and_always_at_once() -> None:
    item = Lost(JobId("ns/a"), Reason.NODE_LOST, "node n1 is gone", NodeName("n1"))
    failed = outcomes.node_lost(REC, item, "fail", NOW)
    requeued = outcomes.node_lost(REC, item, "requeue", NOW)
    assert failed.body is not None and failed.body["status"]["phase"] == "Failed"
    assert requeued.body is not None and requeued.body["status"]["phase"] == "Pending"
    assert requeued.body["status"]["message"].endswith("; queued again")
    assert failed.window_s == requeued.window_s == AT_ONCE
    assert requeued.event == EventPost(Reason.NODE_LOST, "node n1 is gone", warning=True)


def test_preemption_tells_the_victim_at_once_and_the_preemptor_by_event_only() -> None:
    p = Preemption(JobId("ns/a"), JobId("ns/b"), "needs 8Gi on n1")
    victim = outcomes.preempted(REC, p, NOW)
    assert victim.window_s == AT_ONCE and victim.body is not None and victim.body["status"]["phase"] == "Pending"
    assert victim.event == EventPost(Reason.PREEMPTED, "preempted for ns/b", warning=True)
    assert outcomes.preempting(p).body is None


def test_refusals_fail_the_job_with_a_warning_and_retries_only_say_so() -> None:
    refused = outcomes.refused(REC, Reason.FAILED, "claim a-gpulane: forbidden", NOW, at_once=True)
    assert refused.body is not None and refused.body["status"]["phase"] == "Failed" and refused.window_s == AT_ONCE
    assert refused.event == EventPost(Reason.FAILED, "claim a-gpulane: forbidden", warning=True)
    retry = outcomes.retrying(REC, "binding its pod failed", NOW)
    assert retry.event is None and retry.window_s is None and retry.body is not None


def test_an_existing_pod_is_adopted_with_what_it_says() -> None:
    other = replace(A, gpu_indices=(1,), gpu_uuids=("GPU-1",))
    assert outcomes.adopted(A, A, unusable=False, same=True) is A
    assert outcomes.adopted(A, other, unusable=False, same=False) is other
    assert outcomes.adopted(A, None, unusable=False, same=False) is None  # no assignment on the pod
    assert outcomes.adopted(A, other, unusable=True, same=False) is None  # being deleted or finished
