"""The pod contract between the operator and the node agent: label, annotation and resource names, and
the assignment they carry, written and read in one place.

The operator writes a placement onto the pod before binding; the agent reads it in ``Allocate`` and for
its inventory; after a crash the operator rebuilds every GPU's lanes from these annotations alone. Both
directions live here so that writing and reading cannot drift apart (docs/contracts.md lists the names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gpulane_core.model import JobClass, JobId, LaneId, NodeName

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "gpulane"
LABEL_JOB = "gpulane.dev/job"

NODE = "gpulane.dev/node"
GPU_INDEX = "gpulane.dev/gpu-index"
GPU_UUID = "gpulane.dev/gpu-uuid"
LANE = "gpulane.dev/lane"
LANE_SIZE_MIB = "gpulane.dev/lane-size-mib"
PERSISTENT_MIB = "gpulane.dev/persistent-mib"
EPHEMERAL_MIB = "gpulane.dev/ephemeral-mib"
MEMORY_LIMIT_MIB = "gpulane.dev/memory-limit-mib"
CHARGE_UNITS = "gpulane.dev/charge-units"
CLASS = "gpulane.dev/class"
ALLOCATED = "gpulane.dev/allocated"  # written by the agent after a successful Allocate

ANNOTATION_KEYS = (NODE, GPU_INDEX, GPU_UUID, LANE, LANE_SIZE_MIB, PERSISTENT_MIB, EPHEMERAL_MIB,
                   MEMORY_LIMIT_MIB, CHARGE_UNITS, CLASS, ALLOCATED, LABEL_JOB)  # fmt: skip

RESOURCE = "gpulane.dev/gpu-memory"
SCHEDULER_NAME = "gpulane"


class AnnotationError(ValueError):
    """A gpulane pod whose assignment annotations are missing or malformed; the message names the key."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a job's pod runs: node, GPUs, lane, and the memory it was admitted with."""

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
        """What the workload may allocate: its persistent memory plus its lane."""
        return self.persistent_mib + self.lane_size_mib

    @property
    def exclusive(self) -> bool:
        return len(self.gpu_indices) > 1


def to_annotations(a: Assignment) -> dict[str, str]:
    return {
        NODE: a.node,
        GPU_INDEX: ",".join(str(i) for i in a.gpu_indices),
        GPU_UUID: ",".join(a.gpu_uuids),
        LANE: a.lane,
        LANE_SIZE_MIB: str(a.lane_size_mib),
        PERSISTENT_MIB: str(a.persistent_mib),
        EPHEMERAL_MIB: str(a.ephemeral_mib),
        MEMORY_LIMIT_MIB: str(a.memory_limit_mib),
        CHARGE_UNITS: str(a.charge_units),
        CLASS: a.job_class.value,
    }


def _required(annotations: Mapping[str, str], key: str) -> str:
    value = annotations.get(key, "").strip()
    if not value:
        raise AnnotationError(f"annotation {key} is missing")
    return value


def _count(annotations: Mapping[str, str], key: str) -> int:
    text = _required(annotations, key)
    try:
        value = int(text)
    except ValueError:
        raise AnnotationError(f"annotation {key}={text!r} is not an integer") from None
    if value < 0:
        raise AnnotationError(f"annotation {key}={text!r} is negative")
    return value


def from_annotations(job: JobId, annotations: Mapping[str, str]) -> Assignment:
    """The inverse of :func:`to_annotations`; AnnotationError naming the key when it cannot be read."""
    node, index_text, uuid_text, lane = (_required(annotations, k) for k in (NODE, GPU_INDEX, GPU_UUID, LANE))
    try:
        indices = tuple(int(i) for i in index_text.split(","))
    except ValueError:
        raise AnnotationError(f"annotation {GPU_INDEX}={index_text!r} is not a list of integers") from None
    uuids = tuple(u.strip() for u in uuid_text.split(","))
    if len(uuids) != len(indices) or not all(uuids):
        raise AnnotationError(f"annotations {GPU_INDEX} and {GPU_UUID} list different numbers of GPUs")
    try:
        job_class = JobClass(annotations.get(CLASS, JobClass.GUARANTEED.value))
    except ValueError as exc:
        raise AnnotationError(f"annotation {CLASS}: {exc}") from None
    return Assignment(
        job=job,
        node=NodeName(node),
        gpu_indices=indices,
        gpu_uuids=uuids,
        lane=LaneId(lane),
        lane_size_mib=_count(annotations, LANE_SIZE_MIB),
        persistent_mib=_count(annotations, PERSISTENT_MIB),
        ephemeral_mib=_count(annotations, EPHEMERAL_MIB),
        charge_units=_count(annotations, CHARGE_UNITS),
        job_class=job_class,
    )


def pod_job(namespace: str, pod_name: str, labels: Mapping[str, str]) -> JobId:
    """The job a gpulane pod runs: ``<namespace>/<label gpulane.dev/job>``, the pod's own name without it."""
    job = labels.get(LABEL_JOB, "").strip()
    return JobId(f"{namespace}/{job or pod_name}")


def written_memory_limit_mib(annotations: Mapping[str, str]) -> int:
    """The memory limit as the operator wrote it, for consumers that hand it to the workload."""
    return _count(annotations, MEMORY_LIMIT_MIB)
