"""What a job is told after a decision or an API call's outcome: pure, typed, unit-tested without I/O.

Each function returns a :class:`JobWrite` (the status change, how long its write may wait to be
coalesced, and the Event that goes with it); ``Runtime.write`` executes it and decides nothing. The
rules that used to sit in the apply code live here: which changes go out at once (nothing would rebuild
them after a crash), which wait (most waits end sooner), when a waiting job gets an Event (only when
its reason changes), and what a lost node means for its jobs (``on_node_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpulane_core.podcontract import Assignment
from gpulane_core.scheduler import Preemption

from gpulane_operator import statuses
from gpulane_operator.crd import JobRecord, Phase, Reason
from gpulane_operator.snapshot import Lost

# A job that waits its turn (Queued) or only moves in the queue is told so within this long: in a burst
# most such waits end sooner, and their Queued status would be one more write per job.
QUEUED_WINDOW_S = 5.0
# A bound job's Scheduled status waits this long for its pod to run: Running (kwok at once, a real node
# in about a second) then writes both in one PATCH. A pod slower than that shows Scheduled meanwhile.
SCHEDULED_WINDOW_S = 5.0
AT_ONCE = 0.0  # a change nothing would rebuild after a crash (its pod is gone, or it is what others wait for)


@dataclass(frozen=True, slots=True)
class EventPost:
    reason: Reason
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class JobWrite:
    body: dict[str, Any] | None = None  # a status patch (statuses.py), or None: only the Event
    window_s: float | None = None  # how long the write may wait for the job's next change; None: the default
    event: EventPost | None = None
    completed: bool = False  # the job reached a terminal phase (its completion time is observed)


def placed(rec: JobRecord, a: Assignment, now: float, claim: str | None = None) -> JobWrite:
    body = statuses.scheduled(rec, a, now, claim)
    return JobWrite(body, SCHEDULED_WINDOW_S, EventPost(Reason.PLACED, body["status"]["message"]))


def synced(patch: dict[str, Any]) -> JobWrite:
    """A lifecycle patch (the job agreeing with its pod, lifecycle.py) and its Event."""
    phase = patch["status"].get("phase")
    message = patch["status"].get("message", "")
    if phase == Phase.PENDING.value:  # the pod is gone: nothing would rebuild that status after a crash
        return JobWrite(patch, AT_ONCE, EventPost(Reason.POD_DELETED, message, warning=True))
    if phase == Phase.RUNNING.value:  # what a queued Scheduled status waits for: both go out now
        return JobWrite(patch, AT_ONCE)
    if phase in (Phase.SUCCEEDED.value, Phase.FAILED.value):
        reason = Reason.SUCCEEDED if phase == Phase.SUCCEEDED.value else Reason.FAILED
        return JobWrite(patch, None, EventPost(reason, message), completed=True)
    return JobWrite(patch)


def queued(rec: JobRecord, reason: Reason, message: str, position: int | None, now: float) -> JobWrite:
    """A job that stays Pending, and why. Its Event only when the reason is new and it cannot run as asked."""
    body = statuses.pending(rec, reason, message, now, position)
    moved_only = rec.scheduled_reason == reason.value and rec.scheduled_message == message
    window = QUEUED_WINDOW_S if reason is Reason.QUEUED or moved_only else None
    new_refusal = reason is Reason.UNSCHEDULABLE and rec.scheduled_reason != reason.value
    return JobWrite(body, window, EventPost(reason, message, warning=True) if new_refusal else None)


def retrying(rec: JobRecord, message: str, now: float, *, at_once: bool = False) -> JobWrite:
    """A placement whose outcome is unknown or was undone: the job says so (and, with that reason, gets a
    kopf daemon that holds the scheduling loop for resyncs)."""
    return JobWrite(statuses.pending(rec, Reason.RETRYING, message, now), AT_ONCE if at_once else None)


def refused(rec: JobRecord, reason: Reason, message: str, now: float, *, at_once: bool = False) -> JobWrite:
    """A job that can never run as specified, or whose pod or claim the apiserver refused: Failed."""
    body = statuses.failed(rec, reason, message, now)
    return JobWrite(body, AT_ONCE if at_once else None, EventPost(reason, message, warning=True))


def node_lost(rec: JobRecord, item: Lost, on_node_loss: str, now: float) -> JobWrite:
    """Its pod was evicted from a lost node or GPU: failed or queued again, as ``on_node_loss`` says."""
    if on_node_loss == "fail":
        body = statuses.failed(rec, item.reason, item.message, now)
    else:
        body = statuses.pending(rec, item.reason, f"{item.message}; queued again", now)
    return JobWrite(body, AT_ONCE, EventPost(item.reason, item.message, warning=True))


def preempted(victim: JobRecord, p: Preemption, now: float) -> JobWrite:
    body = statuses.pending(victim, Reason.PREEMPTED, f"preempted: {p.reason}", now, preempted=True)
    return JobWrite(body, AT_ONCE, EventPost(Reason.PREEMPTED, f"preempted for {p.for_job}", warning=True))


def preempting(p: Preemption) -> JobWrite:
    return JobWrite(event=EventPost(Reason.PREEMPTING, f"preempting {p.victim}: {p.reason}"))


def adopted(a: Assignment, existing: Assignment | None, unusable: bool, same: bool) -> Assignment | None:
    """The assignment to bind when the job's pod already existed: what the pod says wins (the lanes are
    rebuilt from it); None when the pod cannot be adopted (no assignment, being deleted or finished)."""
    if existing is None or unusable:
        return None
    return a if same else existing
