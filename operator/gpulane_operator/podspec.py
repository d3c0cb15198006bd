"""The pod a GPUShareJob runs in: built purely from the job's template and its assignment.

The pod carries everything the node agent needs (annotations of docs/contracts.md), requests its
charge of ``gpulane.dev/gpu-memory`` on the first container, names gpulane as its scheduler and is
owned by the job, so deleting the job (or garbage collection) removes it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Mapping
from typing import Any

from gpulane_core.cluster import Placement
from gpulane_core.podcontract import (
    LABEL_JOB,
    MANAGED_BY,
    MANAGER,
    RESOURCE,
    SCHEDULER_NAME,
    Assignment,
    to_annotations,
)

from gpulane_operator.assignment import pod_name
from gpulane_operator.claims import CLAIM_MIB, REQUEST
from gpulane_operator.crd import JobRecord
from gpulane_operator.names import API_VERSION, KIND


def charge_units(placement: Placement, unit_mib: int, taken: Collection[int], room: int | None = None) -> int | None:
    """Units of gpulane.dev/gpu-memory the pod requests (contracts.md "Extended resource"), or None.

    The lane opener pays persistent + lane size, a job growing a lane pays persistent + growth, a job
    sharing a lane pays its persistent memory: that is exactly the plan's ``growth_mib``. At least
    one unit, so the device plugin's Allocate is always called; moved down off ``taken`` (the charges
    of the node's pods not yet allocated) so the agent's match by charge is never ambiguous.

    Never above the growth, nor above ``room`` (the node's units the kubelet has not handed to live
    pods): the kubelet counts these units against the node's allocatable until the pod ends and refuses
    a pod that does not fit (UnexpectedAdmissionError). Distinct counts for k pods in flight sum to at
    least k(k+1)/2 units, so padding upwards would make a burst of small jobs on one node cost far more
    units than memory, for as long as they run. None means "not this cycle": the job waits until the
    device plugin has allocated some of the node's pods in flight, which frees their counts. Charging
    less than the growth is safe: the lane invariant, not the kubelet's count, keeps GPU memory safe,
    and Allocate refuses pods gpulane did not assign.
    """
    if unit_mib <= 0:
        raise ValueError(f"memory unit must be positive, got {unit_mib}")
    mib = sum(choice.plan.growth_mib for choice in placement.gpus)
    units = max(1, math.ceil(mib / unit_mib))
    top = units if room is None else min(units, room)
    return next((u for u in range(top, 0, -1) if u not in taken), None)


def build_pod(rec: JobRecord, assignment: Assignment, claim_mib: int | None = None) -> dict[str, Any]:
    """The pod for the job ``rec`` placed as ``assignment``; the job's template is not modified.

    With ``claim_mib`` (a DRA job) the pod asks for no extended resource: its GPU comes from the
    ResourceClaim named like the pod (claims.build_claim), and the claim's memory is written on the
    pod so that a restarted operator builds the same claim again."""
    template = copy.deepcopy(dict(rec.template))  # a private copy: changed in place below
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    labels = {**(tmeta.get("labels") or {}), MANAGED_BY: MANAGER, LABEL_JOB: rec.name}
    annotations = {**(tmeta.get("annotations") or {}), **to_annotations(assignment)}
    containers = spec.get("containers")
    if not containers:
        raise ValueError("spec.template.spec.containers: at least one container is required")
    resources = containers[0].get("resources") or {}
    if claim_mib is None:
        units = str(assignment.charge_units)
        resources["limits"] = {**(resources.get("limits") or {}), RESOURCE: units}
        resources["requests"] = {**(resources.get("requests") or {}), RESOURCE: units}
    else:
        annotations[CLAIM_MIB] = str(claim_mib)
        resources["claims"] = [*(resources.get("claims") or ()), {"name": REQUEST}]
        spec["resourceClaims"] = [
            *(spec.get("resourceClaims") or ()), {"name": REQUEST, "resourceClaimName": pod_name(rec.name)}
        ]
    containers[0]["resources"] = resources
    spec["schedulerName"] = SCHEDULER_NAME
    spec.pop("nodeName", None)
    # A job runs to completion: without an explicit policy its pod must reach Succeeded or Failed.
    spec.setdefault("restartPolicy", "Never")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(rec.name),
            "namespace": rec.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": rec.name,
                    "uid": rec.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def same_assignment(pod_annotations: Mapping[str, str], assignment: Assignment) -> bool:
    """Whether an existing pod (found on a 409) carries exactly this assignment."""
    wanted = to_annotations(assignment)
    return all(pod_annotations.get(k) == v for k, v in wanted.items())
