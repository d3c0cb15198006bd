"""A placement as written on the pod: the annotations of docs/contracts.md, both ways.

The pod's annotations are the operator's durable memory. After a crash the lane state of every GPU
is rebuilt from them alone, so writing and reading them must round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpulane_core.cluster import Placement
from gpulane_core.model import Job, JobClass, JobId, LaneId, NodeName

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "gpulane"
LABEL_JOB = "gpulane.dev/job"
NODE = "gpulane.dev/node"
GPU_INDEX = "gpulane.dev/gpu-index"
GPU_UUID = "gpulane.dev/gpu-uuid"
LANE = "gpulane.dev/lane"
LANE_SIZE = "gpulane.dev/lane-size-mib"
PERSISTENT = "gpulane.dev/persistent-mib"
EPHEMERAL = "gpulane.dev/ephemeral-mib"
MEMORY_LIMIT = "gpulane.dev/memory-limit-mib"
CHARGE = "gpulane.dev/charge-units"
CLASS = "gpulane.dev/class"
ALLOCATED = "gpulane.dev/allocated"

RESOURCE = "gpulane.dev/gpu-memory"
SCHEDULER_NAME = "gpulane"
TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})


class AnnotationError(ValueError):
    """A gpulane pod whose assignment annotations are missing or malformed."""


@dataclass(frozen=True, slots=True)
class Assignment:
    job: JobId
    node: NodeName
    gpu_indices: tuple[int, ...]
    gpu_uuids: tuple[str, ...]
    lane: LaneId
    lane_size_mib: int
    persistent_mib: int
    ephemeral_mib: int
    charge_units: int
    job_class: JobClass

    @property
    def memory_limit_mib(self) -> int:
        return self.persistent_mib + self.lane_size_mib

    @property
    def exclusive(self) -> bool:
        return len(self.gpu_indices) > 1


@dataclass(frozen=True, slots=True)
class PodRecord:
    """A gpulane pod as the operator's index holds it."""

    namespace: str
    name: str
    job: JobId
    phase: str
    bound_node: str
    deleting: bool
    allocated: bool
    assignment: Assignment | None
    error: str = ""

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_POD_PHASES

    @property
    def holds_memory(self) -> bool:
        """Whether its lane must still be counted: until the pod is finished or gone."""
        return self.assignment is not None and not self.terminal


def from_placement(job: Job, placement: Placement, charge_units: int) -> Assignment:
    first = placement.first
    return Assignment(
        job=job.name,
        node=placement.node,
        gpu_indices=tuple(c.index for c in placement.gpus),
        gpu_uuids=tuple(c.uuid for c in placement.gpus),
        lane=first.lane,
        lane_size_mib=first.plan.lane_size_mib,
        persistent_mib=job.persistent_mib,
        ephemeral_mib=job.ephemeral_mib,
        charge_units=charge_units,
        job_class=job.job_class,
    )


def to_annotations(a: Assignment) -> dict[str, str]:
    return {
        NODE: a.node,
        GPU_INDEX: ",".join(str(i) for i in a.gpu_indices),
        GPU_UUID: ",".join(a.gpu_uuids),
        LANE: a.lane,
        LANE_SIZE: str(a.lane_size_mib),
        PERSISTENT: str(a.persistent_mib),
        EPHEMERAL: str(a.ephemeral_mib),
        MEMORY_LIMIT: str(a.memory_limit_mib),
        CHARGE: str(a.charge_units),
        CLASS: a.job_class.value,
    }


def _int(annotations: Mapping[str, str], key: str) -> int:
    raw = annotations.get(key)
    if raw is None:
        raise AnnotationError(f"annotation {key} is missing")
    try:
        value = int(raw)
    except ValueError as exc:
        raise AnnotationError(f"annotation {key}={raw!r} is not an integer") from exc
    if value < 0:
        raise AnnotationError(f"annotation {key}={raw!r} is negative")
    return value


def from_annotations(job: JobId, annotations: Mapping[str, str]) -> Assignment:
    """The inverse of :func:`to_annotations`; AnnotationError naming the key when it cannot be read."""
    for key in (NODE, GPU_INDEX, GPU_UUID, LANE):
        if not annotations.get(key):
            raise AnnotationError(f"annotation {key} is missing")
    try:
        indices = tuple(int(i) for i in annotations[GPU_INDEX].split(","))
    except ValueError as exc:
        raise AnnotationError(f"annotation {GPU_INDEX}={annotations[GPU_INDEX]!r} is not a list of integers") from exc
    uuids = tuple(annotations[GPU_UUID].split(","))
    if len(uuids) != len(indices):
        raise AnnotationError(f"annotations {GPU_INDEX} and {GPU_UUID} list different numbers of GPUs")
    try:
        job_class = JobClass(annotations.get(CLASS, JobClass.GUARANTEED.value))
    except ValueError as exc:
        raise AnnotationError(f"annotation {CLASS}: {exc}") from exc
    return Assignment(
        job=job,
        node=NodeName(annotations[NODE]),
        gpu_indices=indices,
        gpu_uuids=uuids,
        lane=LaneId(annotations[LANE]),
        lane_size_mib=_int(annotations, LANE_SIZE),
        persistent_mib=_int(annotations, PERSISTENT),
        ephemeral_mib=_int(annotations, EPHEMERAL),
        charge_units=_int(annotations, CHARGE),
        job_class=job_class,
    )


def parse_pod(body: Mapping[str, Any]) -> PodRecord | None:
    """A gpulane pod to a PodRecord; None for pods that do not belong to a GPUShareJob."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER or not labels.get(LABEL_JOB):
        return None
    annotations = meta.get("annotations") or {}
    namespace = str(meta.get("namespace", ""))
    jid = JobId(f"{namespace}/{labels[LABEL_JOB]}")
    assignment: Assignment | None
    try:
        assignment, error = from_annotations(jid, annotations), ""
    except AnnotationError as exc:
        assignment, error = None, str(exc)
    return PodRecord(
        namespace=namespace,
        name=str(meta.get("name", "")),
        job=jid,
        phase=str((body.get("status") or {}).get("phase") or "Pending"),
        bound_node=str((body.get("spec") or {}).get("nodeName") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        allocated=annotations.get(ALLOCATED) == "true",
        assignment=assignment,
        error=error,
    )


def pod_name(job_name: str) -> str:
    """Deterministic, so a retried or restarted cycle finds the pod it may already have created."""
    return f"{job_name}-gpulane"
