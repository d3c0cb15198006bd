"""Pure translation between GPUShareJob bodies and gpulane_core values, plus status builders.

Handlers never pick fields out of raw bodies themselves: they call :func:`parse_job` and the status
builders here, so the mapping from the API's shape to the core's lives in one tested place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from gpulane_core.model import Job, JobClass, JobId, validate_job
from gpulane_core.quantity import QuantityError, parse_mib


class Phase(enum.Enum):
    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class Reason(enum.Enum):
    """Reasons of the Scheduled/Ready/Completed conditions (also used as Event reasons)."""

    QUEUED = "Queued"
    RETRYING = "Retrying"  # a placement's API call failed; the job is tried again
    UNSCHEDULABLE = "Unschedulable"
    INVALID = "InvalidSpec"
    PLACED = "Placed"
    PREEMPTED = "Preempted"
    PREEMPTING = "Preempting"
    NODE_LOST = "NodeLost"
    GPU_LOST = "GPULost"
    POD_DELETED = "PodDeleted"
    POD_RUNNING = "PodRunning"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionBody(TypedDict):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: NotRequired[int]


class SpecError(ValueError):
    """A spec the apiserver accepted but the core rejects; the message names the field."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What the operator knows about one GPUShareJob, parsed once per watch event."""

    id: JobId
    namespace: str
    name: str
    uid: str
    generation: int
    created_s: float
    phase: Phase
    deleting: bool
    job: Job | None  # None when the spec is invalid (error says why)
    error: str = ""
    queue_position: int | None = None
    scheduled_reason: str = ""
    scheduled_message: str = ""
    preemptions: int = 0
    conditions: tuple[Mapping[str, Any], ...] = ()
    queued_s: float = 0.0
    template: Mapping[str, Any] = field(default_factory=dict, compare=False)
    allocation: str = ""  # spec.allocation: device-plugin | dra; empty: the operator's scheduling.allocation
    selectors: tuple[str, ...] = ()  # spec.deviceSelectors (CEL, DRA only; checked when the mode is known)

    @property
    def pending(self) -> bool:
        return self.phase is Phase.PENDING and not self.deleting


def job_id(namespace: str, name: str) -> JobId:
    return JobId(f"{namespace}/{name}")


def split_job_id(job: JobId) -> tuple[str, str]:
    namespace, _, name = job.partition("/")
    return namespace, name


def parse_time(text: str | None) -> float:
    """RFC 3339 (as the apiserver writes it) to epoch seconds; 0.0 when absent."""
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def format_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_spec(jid: JobId, spec: Mapping[str, Any], created_s: float) -> Job:
    """The core Job for a spec; SpecError naming the field when it cannot be understood."""
    memory = spec.get("memory") or {}
    profile = spec.get("profile") or {}
    try:
        persistent = parse_mib(memory.get("persistent", 0))
        ephemeral = parse_mib(memory.get("ephemeral", 0))
        working_set = parse_mib(profile.get("workingSet", 0))
    except QuantityError as exc:
        raise SpecError(f"spec.memory: {exc}") from exc
    try:
        job_class = JobClass(spec.get("class", JobClass.GUARANTEED.value))
    except ValueError as exc:
        raise SpecError(f"spec.class: {exc}") from exc
    job = Job(
        name=jid,
        persistent_mib=persistent,
        ephemeral_mib=ephemeral,
        gpus=int(spec.get("gpus", 1)),
        arrival_s=max(0.0, created_s),
        iteration_s=float(profile.get("iterationSeconds", 1.0)),
        iterations=int(profile.get("iterations", 1)),
        working_set_mib=working_set,
        job_class=job_class,
        priority=int(spec.get("priority", 0)),
        gpu_types=frozenset(str(t) for t in spec.get("gpuTypes") or ()),
    )
    problems = validate_job(job)
    if problems:
        raise SpecError("spec: " + "; ".join(problems))
    if not (spec.get("template") or {}).get("spec", {}).get("containers"):
        raise SpecError("spec.template.spec.containers: at least one container is required")
    return job


ALLOCATIONS = ("device-plugin", "dra")


def parse_allocation(spec: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(spec.allocation or "", spec.deviceSelectors); SpecError naming the field when malformed."""
    allocation = spec.get("allocation") or ""
    if allocation and allocation not in ALLOCATIONS:
        raise SpecError(f"spec.allocation: must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    selectors = spec.get("deviceSelectors") or ()
    if not isinstance(selectors, list | tuple) or not all(isinstance(e, str) and e.strip() for e in selectors):
        raise SpecError("spec.deviceSelectors: must be a list of non-empty CEL expressions")
    if selectors and allocation == "device-plugin":
        raise SpecError("spec.deviceSelectors: only DRA jobs (spec.allocation: dra) can select devices")
    return str(allocation), tuple(selectors)


def parse_job(body: Mapping[str, Any]) -> JobRecord:
    """A GPUShareJob body (from a watch event or index) to a JobRecord; never raises for bad specs."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    jid = job_id(namespace, name)
    created_s = parse_time(meta.get("creationTimestamp"))
    try:
        phase = Phase(status.get("phase") or Phase.PENDING.value)
    except ValueError:
        phase = Phase.PENDING
    job: Job | None
    allocation, selectors = "", tuple[str, ...]()
    try:
        job, error = parse_spec(jid, body.get("spec") or {}, created_s), ""
        allocation, selectors = parse_allocation(body.get("spec") or {})
    except (SpecError, TypeError, ValueError) as exc:
        job, error = None, str(exc)
    scheduled = condition(status.get("conditions") or (), "Scheduled")
    return JobRecord(
        id=jid,
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0) or 0),
        created_s=created_s,
        phase=phase,
        deleting=bool(meta.get("deletionTimestamp")),
        job=job,
        error=error,
        queue_position=status.get("queuePosition"),
        scheduled_reason=str(scheduled.get("reason", "")) if scheduled else "",
        scheduled_message=str(scheduled.get("message", "")) if scheduled else "",
        preemptions=int(status.get("preemptions", 0) or 0),
        conditions=tuple(status.get("conditions") or ()),
        queued_s=parse_time(status.get("queuedTime")) or created_s,
        template=(body.get("spec") or {}).get("template") or {},
        allocation=allocation,
        selectors=selectors,
    )


def condition(conditions: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == kind:
            return cond
    return None


def make_condition(
    kind: str, ok: bool, reason: Reason, message: str, now_s: float, generation: int = 0
) -> ConditionBody:
    cond = ConditionBody(
        type=kind,
        status="True" if ok else "False",
        reason=reason.value,
        message=message,
        lastTransitionTime=format_time(now_s),
    )
    if generation:
        cond["observedGeneration"] = generation
    return cond


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], new: Sequence[ConditionBody]
) -> list[Mapping[str, Any]]:
    """Replace conditions by type; keep lastTransitionTime when the status did not change."""
    out: list[Mapping[str, Any]] = []
    replacing = {c["type"]: c for c in new}
    for cond in existing:
        fresh = replacing.pop(str(cond.get("type")), None)
        if fresh is None:
            out.append(cond)
            continue
        if cond.get("status") == fresh["status"] and cond.get("lastTransitionTime"):
            fresh = ConditionBody(**{**fresh, "lastTransitionTime": str(cond["lastTransitionTime"])})
        out.append(fresh)
    out.extend(replacing.values())
    return out
