"""Pure rules that keep a job's phase in step with its pod.

Two watch streams (jobs and pods) deliver changes in any order, so both the pod handler and the job
handler ask :func:`sync` the same question; whichever sees the pair last makes the phase right.
"""

from __future__ import annotations

from typing import Any

from gpulane_operator import statuses
from gpulane_operator.assignment import PodRecord
from gpulane_operator.crd import JobRecord, Phase, Reason


def sync(rec: JobRecord, pod: PodRecord | None, now_s: float) -> dict[str, Any] | None:
    """The status patch that makes ``rec`` agree with ``pod``, or None when they agree."""
    if rec.phase.terminal or rec.deleting or pod is None or pod.deleting:
        return None
    # A Pending job with its own finished pod: an operator placed it and died before writing Scheduled,
    # and the pod ran to its end before any operator looked again. The pod is the record; nothing else
    # would ever move this job (a cycle neither queues a job that has a pod nor resumes a finished one).
    orphaned = rec.phase is Phase.PENDING and pod.assignment is not None and pod.owner_uid == rec.uid
    if pod.terminal and (rec.phase in (Phase.SCHEDULED, Phase.RUNNING) or orphaned):
        ok = pod.phase == "Succeeded"
        note = " (placed by an earlier operator)" if orphaned else ""
        return statuses.finished(rec, ok, f"pod {pod.name} {'succeeded' if ok else 'failed'}{note}", now_s)
    if pod.phase == "Running" and rec.phase is Phase.SCHEDULED:
        return statuses.running(rec, now_s)
    return None


def after_pod_gone(rec: JobRecord, now_s: float) -> dict[str, Any] | None:
    """A running job's pod disappeared without the operator deleting it: queue the job again."""
    if rec.deleting or rec.phase not in (Phase.SCHEDULED, Phase.RUNNING):
        return None
    return statuses.pending(rec, Reason.POD_DELETED, "its pod was deleted; the job is queued again", now_s)
