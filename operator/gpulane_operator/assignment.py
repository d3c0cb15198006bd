"""The operator's view of its pods: a placement becomes an Assignment, a pod body a PodRecord.

The pod's annotations are the operator's durable memory: after a crash the lane state of every GPU is
rebuilt from them alone. Their names and both directions of the mapping live in
gpulane_core.podcontract, shared with the node agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpulane_core.cluster import Placement
from gpulane_core.model import Job, JobId
from gpulane_core.podcontract import (
    ALLOCATED,
    LABEL_JOB,
    MANAGED_BY,
    MANAGER,
    AnnotationError,
    Assignment,
    from_annotations,
)

from gpulane_operator.crd import job_id
from gpulane_operator.names import KIND

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})
CLAIM_MIB = "gpulane.dev/claim-mib"  # on a DRA pod: its claim's memory per GPU (written by podspec)


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
    owner_uid: str = ""  # the GPUShareJob it was created for (ownerReferences): tells incarnations apart
    uid: str = ""
    claim_mib: int | None = None  # a DRA pod: its claim's memory per GPU (annotation gpulane.dev/claim-mib)

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


def parse_pod(body: Mapping[str, Any]) -> PodRecord | None:
    """A gpulane pod to a PodRecord; None for pods that do not belong to a GPUShareJob."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER or not labels.get(LABEL_JOB):
        return None
    annotations = meta.get("annotations") or {}
    namespace = str(meta.get("namespace", ""))
    jid = job_id(namespace, labels[LABEL_JOB])
    assignment: Assignment | None
    try:
        assignment, error = from_annotations(jid, annotations), ""
    except AnnotationError as exc:
        assignment, error = None, str(exc)
    phase = str((body.get("status") or {}).get("phase") or "Pending")
    return PodRecord(
        namespace=namespace,
        name=str(meta.get("name", "")),
        job=jid,
        phase=phase,
        bound_node=str((body.get("spec") or {}).get("nodeName") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        # A kubelet runs a pod only after admitting it, and admission is where Allocate happens (the agent
        # annotates before answering). Running also frees the charge on nodes without a device plugin (kwok).
        allocated=annotations.get(ALLOCATED) == "true" or phase == "Running",
        assignment=assignment,
        error=error,
        owner_uid=next((str(o.get("uid", "")) for o in meta.get("ownerReferences") or () if o.get("kind") == KIND), ""),
        uid=str(meta.get("uid", "")),
        claim_mib=_claim_mib(annotations.get(CLAIM_MIB)),
    )


def _claim_mib(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def pod_name(job_name: str) -> str:
    """Deterministic, so a retried or restarted cycle finds the pod it may already have created."""
    return f"{job_name}-gpulane"
