"""DRA jobs: the ResourceClaim of a pod, its allocation, and claims allocated by others, all pure.

In DRA mode the operator stays the scheduler: it places the job in a lane exactly as in device-plugin
mode, then writes that decision as a claim (driver gpu.gpulane.dev, docs/dra.md) that the node agent
prepares. One claim per pod, named like the pod and owned by it. The claim's memory is the job's
charge (persistent + its share of the lane's growth, the plan's ``growth_mib``), at least one unit:
what the allocator accounts on the device. Claims of our driver that gpulane did not allocate (no
``gpulane.dev/job`` annotation) are memory someone else holds: each result is a lane of its own,
all of it persistent, so one lane invariant covers device-plugin jobs, DRA jobs and foreign claims.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpulane_core.model import Gpu, JobClass, JobId, LaneId, NodeName
from gpulane_core.podcontract import EPHEMERAL_MIB, LABEL_JOB, LANE, PERSISTENT_MIB, Assignment
from gpulane_core.quantity import QuantityError, parse_mib

from gpulane_operator.assignment import CLAIM_MIB
from gpulane_operator.crd import JobRecord
from gpulane_operator.inventory import NodeInventory
from gpulane_operator.selectors import DRIVER

DEVICE_CLASS = DRIVER
__all__ = ["CLAIM_MIB", "ClaimRecord", "build_claim", "foreign_assignments", "parse_claim", "status_patch"]
REQUEST = "gpu"  # the request name in the claim, and the pod's resourceClaims entry
DRA = "dra"
DEVICE_PLUGIN = "device-plugin"


def mode(rec: JobRecord, default: str) -> str:
    return rec.allocation or default


def device_name(index: int) -> str:
    return f"gpu-{index}"  # the ResourceSlice's device names (gpulane_agent.dra.slices)


def claim_mib(growth_mib: Iterable[int], unit_mib: int) -> int:
    """The memory asked of each device: the largest per-GPU growth of the plan, at least one unit."""
    return max(unit_mib, *growth_mib)


def share_id(claim_uid: str, device: str) -> str:
    """Lowercase UUID (what the apiserver accepts), derived so that writing it again writes the same."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{claim_uid}/{device}"))


def build_claim(
    rec: JobRecord, a: Assignment, pod: str, pod_uid: str, mib: int, selectors: tuple[str, ...]
) -> dict[str, Any]:
    """The claim for the pod ``pod`` (uid ``pod_uid``) of job ``rec`` placed as ``a``."""
    exactly: dict[str, Any] = {
        "deviceClassName": DEVICE_CLASS,
        "allocationMode": "ExactCount",
        "count": len(a.gpu_indices),
        "capacity": {"requests": {"memory": f"{mib}Mi"}},
    }
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "name": pod,
            "namespace": rec.namespace,
            "annotations": {
                LANE: a.lane,
                PERSISTENT_MIB: str(a.persistent_mib),
                EPHEMERAL_MIB: str(a.ephemeral_mib),
                LABEL_JOB: rec.name,
            },
            # No blockOwnerDeletion: it would need update on pods/finalizers (OwnerReferencesPermissionEnforcement),
            # and nothing deletes a gpulane pod in the foreground.
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": pod_uid, "controller": True}],
        },
        "spec": {"devices": {"requests": [{"name": REQUEST, "exactly": exactly}]}},
    }


def allocation(a: Assignment, mib: int, claim_uid: str) -> dict[str, Any]:
    """status.allocation: one result per GPU of the assignment, on the node's pool."""
    results = [
        {
            "request": REQUEST,
            "driver": DRIVER,
            "pool": a.node,
            "device": device_name(i),
            "consumedCapacity": {"memory": f"{mib}Mi"},
            "shareID": share_id(claim_uid, device_name(i)),
        }
        for i in a.gpu_indices
    ]
    return {
        "devices": {"results": results},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [a.node]}]}]},
    }  # fmt: skip


def status_patch(a: Assignment, mib: int, claim_uid: str, pod: str, pod_uid: str) -> dict[str, Any]:
    """The one status write that allocates the claim and reserves it for its pod."""
    return {
        "status": {
            "allocation": allocation(a, mib, claim_uid),
            "reservedFor": [{"resource": "pods", "name": pod, "uid": pod_uid}],
        }
    }


def _results(alloc: Mapping[str, Any] | None) -> tuple[tuple[str, str, str, int], ...]:
    """(driver, pool, device, MiB) of each result; -1 MiB where the memory is missing or unreadable."""
    out = []
    for r in ((alloc or {}).get("devices") or {}).get("results") or ():
        try:
            mib = parse_mib(((r.get("consumedCapacity") or {}).get("memory")) or "")
        except (QuantityError, TypeError, ValueError):
            mib = -1
        out.append((str(r.get("driver", "")), str(r.get("pool", "")), str(r.get("device", "")), mib))
    return tuple(sorted(out))


def same_allocation(existing: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether a claim's allocation already says what ``wanted`` says (share IDs aside)."""
    return existing is not None and _results(existing) == _results(wanted)


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A ResourceClaim as the operator's index holds it."""

    namespace: str
    name: str
    uid: str
    ours: bool  # gpulane allocated it (it carries gpulane.dev/job)
    owner_uid: str  # the pod that owns it, if any
    results: tuple[tuple[str, str, str, int], ...]  # (driver, pool, device, MiB) of its allocation
    deleting: bool = False


def parse_claim(body: Mapping[str, Any]) -> ClaimRecord:
    meta = body.get("metadata") or {}
    owners = meta.get("ownerReferences") or ()
    return ClaimRecord(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        ours=LABEL_JOB in (meta.get("annotations") or {}),
        owner_uid=next((str(o.get("uid", "")) for o in owners if o.get("kind") == "Pod"), ""),
        results=_results((body.get("status") or {}).get("allocation")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def foreign_assignments(
    claims: Iterable[ClaimRecord], inventory: Mapping[NodeName, NodeInventory]
) -> list[Assignment]:
    """Pseudo-assignments for memory of our driver that others allocated: each result holds its memory
    as persistent in a lane of its own (``claim-<uid>-<device>``), size 0. Results on a pool or device
    the inventory does not know are left out: nothing of ours is there to protect."""
    out = []
    for claim in claims:
        if claim.ours:
            continue
        for driver, pool, device, mib in claim.results:
            gpu = _gpu(inventory.get(NodeName(pool)), device) if driver == DRIVER else None
            if gpu is None or mib < 0:
                continue
            out.append(
                Assignment(
                    job=JobId(f"claim:{claim.namespace}/{claim.name}/{device}"),
                    node=NodeName(pool),
                    gpu_indices=(gpu.index,),
                    gpu_uuids=(gpu.uuid,),
                    lane=LaneId(f"claim-{claim.uid}-{device}"),
                    lane_size_mib=0,
                    persistent_mib=mib,
                    ephemeral_mib=0,
                    charge_units=0,
                    job_class=JobClass.GUARANTEED,  # never a preemption victim: gpulane cannot evict it
                )
            )
    return out


def _gpu(inv: NodeInventory | None, device: str) -> Gpu | None:
    if inv is None:
        return None
    return next((g for g in inv.node.gpus if device_name(g.index) == device), None)


def oversized(name: str, need_mib: int, inventory: Mapping[NodeName, NodeInventory]) -> str | None:
    """Why a claim for ``need_mib`` per device can never be allocated, or None (also with no nodes yet)."""
    largest = max((g.memory_mib for inv in inventory.values() for g in inv.node.gpus), default=None)
    if largest is None or need_mib <= largest:
        return None
    return f"claim {name}: memory request {need_mib}Mi exceeds the largest {DRIVER} device ({largest}Mi)"
