"""Pure builders of GPUShareJob status patches: phase, placement, queue position and conditions.

Every phase change goes through one of these, so ``kubectl get gsj`` and ``kubectl describe`` always
show a phase, a reason and a message that agree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gpulane_core.podcontract import Assignment
from gpulane_core.quantity import format_mib

from gpulane_operator.assignment import pod_name
from gpulane_operator.crd import (
    JobRecord,
    Phase,
    Reason,
    condition,
    format_time,
    make_condition,
    merge_conditions,
    parse_time,
)

SCHEDULED = "Scheduled"
READY = "Ready"
COMPLETED = "Completed"


def pending(
    rec: JobRecord, reason: Reason, message: str, now_s: float, position: int | None = None, *, preempted: bool = False
) -> dict[str, Any]:
    """Back to (or still in) the queue: Scheduled=False with why; placement cleared."""
    conditions = merge_conditions(
        rec.conditions,
        [
            make_condition(SCHEDULED, False, reason, message, now_s, rec.generation),
            make_condition(READY, False, reason, "the job has no running pod", now_s, rec.generation),
        ],
    )
    status: dict[str, Any] = {
        "phase": Phase.PENDING.value,
        "message": message,
        "queuePosition": position,
        "placement": None,
        "scheduledTime": None,
        "conditions": conditions,
        "observedGeneration": rec.generation,
    }
    if rec.phase is not Phase.PENDING or not rec.conditions:
        status["queuedTime"] = format_time(now_s)
    if preempted:
        status["preemptions"] = rec.preemptions + 1
    return {"status": status}


def scheduled(rec: JobRecord, a: Assignment, now_s: float, claim: str | None = None) -> dict[str, Any]:
    """Bound; ``claim``: the ResourceClaim allocated for a DRA job's pod (None: the device plugin)."""
    message = (
        f"bound to {a.node} GPU {','.join(str(i) for i in a.gpu_indices)} in {a.lane}"
        f" (lane {format_mib(a.lane_size_mib)}, limit {format_mib(a.memory_limit_mib)})"
    )
    if claim is not None:
        message += f" with claim {claim}"
    return {
        "status": {
            "phase": Phase.SCHEDULED.value,
            "message": message,
            "queuePosition": None,
            "pod": pod_name(rec.name),
            "scheduledTime": format_time(now_s),
            "placement": {
                "node": a.node,
                "gpuIndex": a.gpu_indices[0],
                "gpuIndices": list(a.gpu_indices),
                "gpuUUID": a.gpu_uuids[0],
                "gpuUUIDs": list(a.gpu_uuids),
                "lane": a.lane,
                "laneSize": format_mib(a.lane_size_mib),
                "laneSizeMiB": a.lane_size_mib,
                "chargeUnits": a.charge_units,
                "allocation": "device-plugin" if claim is None else "dra",
                "claim": claim,
            },
            "conditions": merge_conditions(
                rec.conditions, [make_condition(SCHEDULED, True, Reason.PLACED, message, now_s, rec.generation)]
            ),
            "observedGeneration": rec.generation,
        }
    }


def running(rec: JobRecord, now_s: float) -> dict[str, Any]:
    return {
        "status": {
            "phase": Phase.RUNNING.value,
            "message": "the pod is running",
            "conditions": merge_conditions(
                rec.conditions,
                [make_condition(READY, True, Reason.POD_RUNNING, "the pod is running", now_s, rec.generation)],
            ),
        }
    }


def finished(rec: JobRecord, succeeded: bool, message: str, now_s: float) -> dict[str, Any]:
    reason = Reason.SUCCEEDED if succeeded else Reason.FAILED
    return {
        "status": {
            "phase": (Phase.SUCCEEDED if succeeded else Phase.FAILED).value,
            "message": message,
            "queuePosition": None,
            "completionTime": format_time(now_s),
            "conditions": merge_conditions(
                rec.conditions,
                [
                    make_condition(COMPLETED, True, reason, message, now_s, rec.generation),
                    make_condition(READY, False, reason, message, now_s, rec.generation),
                ],
            ),
        }
    }


def failed(rec: JobRecord, reason: Reason, message: str, now_s: float) -> dict[str, Any]:
    """A job that will never run (invalid spec, node lost with on_node_loss=fail)."""
    return {
        "status": {
            "phase": Phase.FAILED.value,
            "message": message,
            "queuePosition": None,
            "completionTime": format_time(now_s),
            "conditions": merge_conditions(
                rec.conditions,
                [
                    make_condition(SCHEDULED, False, reason, message, now_s, rec.generation),
                    make_condition(COMPLETED, True, reason, message, now_s, rec.generation),
                ],
            ),
        }
    }


def compose(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """One merge patch with the effect of writing ``first`` and then ``then`` (status writes coalesced).

    Fields of ``then`` win (a None too: merge patch deletes the field); conditions, which a merge patch
    replaces as a whole list, are merged by type so a condition only ``first`` wrote is kept.
    """
    a, b = first["status"], then["status"]
    status = {**a, **b}
    if "conditions" in a and "conditions" in b:
        later = {c["type"] for c in b["conditions"]}
        status["conditions"] = [c for c in a["conditions"] if c["type"] not in later] + list(b["conditions"])
    return {"status": status}


def overlay(rec: JobRecord, patch: dict[str, Any]) -> JobRecord:
    """``rec`` as it will read once ``patch`` (not yet written) is applied: decisions made meanwhile
    must see the phase and conditions the operator has already chosen, not the older ones the watch shows."""
    s = patch["status"]
    conditions = tuple(s["conditions"]) if "conditions" in s else rec.conditions
    scheduled = condition(conditions, SCHEDULED)
    return replace(
        rec,
        phase=Phase(s["phase"]) if s.get("phase") else rec.phase,
        conditions=conditions,
        queue_position=s.get("queuePosition", rec.queue_position),
        scheduled_reason=str(scheduled.get("reason", "")) if scheduled else "",
        scheduled_message=str(scheduled.get("message", "")) if scheduled else "",
        preemptions=int(s.get("preemptions", rec.preemptions) or 0),
        queued_s=parse_time(s["queuedTime"]) if s.get("queuedTime") else rec.queued_s,
    )
