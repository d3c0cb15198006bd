from __future__ import annotations

from dataclasses import replace

from gpulane_core.model import JobClass
from gpulane_core.podcontract import Assignment
from gpulane_operator.assignment import PodRecord, parse_pod
from gpulane_operator.crd import parse_job
from gpulane_operator.lifecycle import after_pod_gone, sync
from opfakes import job_body

ASSIGNMENT = Assignment("ns/a", "n1", (0,), ("GPU-0",), "lane-0", 4096, 2048, 4096, 24, JobClass.GUARANTEED)


def pod(phase: str, deleting: bool = False) -> PodRecord:
    return PodRecord("ns", "a-gpulane", parse_job(job_body("a")).id, phase, "n1", deleting, False, None)


def test_phase_follows_the_pod() -> None:
    scheduled = parse_job(job_body("a", status={"phase": "Scheduled"}))
    assert sync(scheduled, pod("Running"), 0.0)["status"]["phase"] == "Running"  # type: ignore[index]
    assert sync(scheduled, pod("Failed"), 0.0)["status"]["phase"] == "Failed"  # type: ignore[index]
    running = parse_job(job_body("a", status={"phase": "Running"}))
    done = sync(running, pod("Succeeded"), 0.0)
    assert done is not None and done["status"]["conditions"][0]["type"] == "Completed"
    assert sync(running, pod("Running"), 0.0) is None
    assert sync(running, pod("Succeeded", deleting=True), 0.0) is None


def test_a_vanished_pod_requeues_a_running_job_only() -> None:
    running = parse_job(job_body("a", status={"phase": "Running"}))
    patch = after_pod_gone(running, 0.0)
    assert patch is not None and patch["status"]["phase"] == "Pending" and patch["status"]["placement"] is None
    assert after_pod_gone(parse_job(job_body("a", status={"phase": "Succeeded"})), 0.0) is None


def test_a_job_whose_operator_died_before_writing_scheduled_finishes_with_its_pod() -> None:
    """The operator created and bound the pod, was killed before the status write, and the pod ran to its
    end before the next operator looked: nothing but this rule would ever move the job out of Pending."""
    job = parse_job(job_body("a"))  # no status at all
    rec = PodRecord("ns", "a-gpulane", job.id, "Succeeded", "n1", False, True, ASSIGNMENT, owner_uid=job.uid)
    done = sync(job, rec, 0.0)
    assert done is not None and done["status"]["phase"] == "Succeeded"
    assert "placed by an earlier operator" in done["status"]["message"]
    failed = sync(job, replace(rec, phase="Failed"), 0.0)
    assert failed is not None and failed["status"]["phase"] == "Failed"
    # A pod of an earlier job of the same name (another uid) says nothing about this one; nor does a
    # pod without gpulane's assignment, nor one that is still running (a cycle resumes that one).
    assert sync(job, replace(rec, owner_uid="uid-of-an-earlier-a"), 0.0) is None
    assert sync(job, replace(rec, assignment=None), 0.0) is None
    assert sync(job, replace(rec, phase="Running"), 0.0) is None


def test_the_pod_parser_reads_the_owning_job_uid() -> None:
    body = {"metadata": {"name": "a-gpulane", "namespace": "ns",
                         "labels": {"app.kubernetes.io/managed-by": "gpulane", "gpulane.dev/job": "a"},
                         "ownerReferences": [{"kind": "GPUShareJob", "name": "a", "uid": "uid-a"}]}}  # fmt: skip
    parsed = parse_pod(body)
    assert parsed is not None and parsed.owner_uid == "uid-a"
