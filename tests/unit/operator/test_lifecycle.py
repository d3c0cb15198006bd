from __future__ import annotations

from gpulane_operator.assignment import PodRecord
from gpulane_operator.crd import parse_job
from gpulane_operator.lifecycle import after_pod_gone, sync
from opfakes import job_body


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
