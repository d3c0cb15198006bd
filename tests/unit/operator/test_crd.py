from __future__ import annotations

from gpulane_core.model import JobClass
from gpulane_operator.crd import Phase, Reason, make_condition, merge_conditions, parse_job
from opfakes import job_body


def test_parse_job_maps_the_spec_to_a_core_job() -> None:
    rec = parse_job(job_body("a", "3Gi", "5Gi", cls="best-effort"))
    assert rec.id == "ns/a"
    assert rec.job is not None
    assert (rec.job.persistent_mib, rec.job.ephemeral_mib) == (3072, 5120)
    assert rec.job.job_class is JobClass.BEST_EFFORT
    assert rec.phase is Phase.PENDING and rec.pending
    assert rec.created_s == 1767225600.0


def test_bare_numbers_are_mib_and_bad_quantities_name_the_field() -> None:
    rec = parse_job(job_body("a", 512, "1024"))
    assert rec.job is not None and (rec.job.persistent_mib, rec.job.ephemeral_mib) == (512, 1024)
    bad = parse_job(job_body("b", "lots", "1Gi"))
    assert bad.job is None and bad.error.startswith("spec.memory:") and "'lots'" in bad.error


def test_zero_memory_is_rejected_with_the_core_reason() -> None:
    rec = parse_job(job_body("z", 0, 0))
    assert rec.job is None and "must need some GPU memory" in rec.error


def test_merge_conditions_keeps_transition_time_when_status_is_unchanged() -> None:
    old = [make_condition("Scheduled", False, Reason.QUEUED, "q", 100.0)]
    new = merge_conditions(old, [make_condition("Scheduled", False, Reason.UNSCHEDULABLE, "u", 200.0)])
    assert new[0]["lastTransitionTime"] == old[0]["lastTransitionTime"] and new[0]["reason"] == "Unschedulable"
    flipped = merge_conditions(old, [make_condition("Scheduled", True, Reason.PLACED, "p", 200.0)])
    assert flipped[0]["lastTransitionTime"] != old[0]["lastTransitionTime"]
