"""Pure decisions of NodePrepareResources: a ResourceClaim's allocation to what its containers get.

The claim is read as the apiserver returns it (a ``resource.k8s.io/v1`` dict) into a ``ClaimView``;
:func:`claim_grant` then picks the device results of our driver and turns them into the same
``ContainerGrant`` (env, mounts) that the device plugin's ``Allocate`` hands out.

Where each figure comes from (docs/dra.md):

- GPUs: each result's ``device`` is ``gpu-<index>`` in the pool named after this node (the slice we
  publish, ``slices.py``); the index is looked up in the node's inventory for the UUID.
- Memory limit: the result's ``consumedCapacity.memory``, the only figure the cluster's allocator
  accounted for this claim. With several GPUs the smallest one is the per-GPU limit.
- Lane, persistent and ephemeral memory: from the podcontract annotations on the *claim* when the
  gpulane operator allocated it (``gpulane.dev/lane``, ``persistent-mib``, ``ephemeral-mib``); a claim
  without them (allocated by kube-scheduler) is a lane of its own, ``claim-<uid>``, whose memory is all
  persistent. A claim with some of them but not all is refused: a half-written contract is a bug, not a
  default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpulane_core import podcontract as ann
from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from gpulane_core.quantity import MIB, QuantityError, parse_bytes

from gpulane_agent.deviceplugin.allocate import ContainerGrant, grant_for
from gpulane_agent.gpu.backend import GpuInfo

DRIVER = "gpu.gpulane.dev"
MEMORY = "memory"  # the capacity name in our ResourceSlice and in claims' capacity requests
_DEVICE = re.compile(r"^gpu-(?P<index>[0-9]+)$")
_LANE_KEYS = (ann.LANE, ann.PERSISTENT_MIB, ann.EPHEMERAL_MIB)


class PrepareRefused(Exception):
    """One claim cannot be prepared; the message (naming the claim) goes back to the kubelet for it."""


def device_name(index: int) -> str:
    return f"gpu-{index}"


@dataclass(frozen=True, slots=True)
class DeviceResult:
    """One entry of ``status.allocation.devices.results``."""

    request: str
    driver: str
    pool: str
    device: str
    consumed: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    share_id: str = ""


@dataclass(frozen=True, slots=True)
class ClaimView:
    namespace: str
    name: str
    uid: str
    allocated: bool
    results: tuple[DeviceResult, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name} (uid {self.uid})"


@dataclass(frozen=True, slots=True)
class ClaimGrant:
    """What one prepared claim gives its containers, and which of its results it covers."""

    claim_uid: str
    results: tuple[DeviceResult, ...]
    grant: ContainerGrant


def claim_view(obj: Mapping[str, Any]) -> ClaimView:
    """A ``resource.k8s.io/v1`` ResourceClaim dict to a ClaimView (missing parts read as empty)."""
    meta = obj.get("metadata") or {}
    allocation = (obj.get("status") or {}).get("allocation")
    results = []
    for r in ((allocation or {}).get("devices") or {}).get("results") or []:
        results.append(
            DeviceResult(
                request=str(r.get("request", "")),
                driver=str(r.get("driver", "")),
                pool=str(r.get("pool", "")),
                device=str(r.get("device", "")),
                consumed={str(k): str(v) for k, v in (r.get("consumedCapacity") or {}).items()},
                share_id=str(r.get("shareID") or ""),
            )
        )
    return ClaimView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        allocated=allocation is not None,
        results=tuple(results),
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
    )


def our_results(claim: ClaimView, node_name: str) -> tuple[DeviceResult, ...]:
    """The claim's results for our driver; PrepareRefused if there are none or one is not on this node."""
    if not claim.allocated:
        raise PrepareRefused(f"claim {claim.key}: not allocated (status.allocation is empty)")
    ours = tuple(r for r in claim.results if r.driver == DRIVER)
    if not ours:
        drivers = ", ".join(sorted({r.driver for r in claim.results})) or "none"
        raise PrepareRefused(f"claim {claim.key}: its allocation has no device of driver {DRIVER} (drivers: {drivers})")
    for r in ours:
        if r.pool != node_name:
            raise PrepareRefused(
                f"claim {claim.key}: request {r.request!r} is allocated {r.device} in pool {r.pool!r}, "
                f"but this node's pool is {node_name!r}"
            )
    return ours


def gpu_index(device: str) -> int:
    """The GPU index of a device name ``gpu-<index>``; -1 for any other name."""
    m = _DEVICE.match(device)
    return int(m.group("index")) if m else -1


def _gpu(claim: ClaimView, result: DeviceResult, gpus: Mapping[int, GpuInfo]) -> GpuInfo:
    if gpu_index(result.device) not in gpus:
        known = ", ".join(device_name(i) for i in sorted(gpus)) or "none"
        raise PrepareRefused(f"claim {claim.key}: device {result.device!r} is not a GPU of this node (devices: {known})")
    return gpus[gpu_index(result.device)]


def consumed_mib(claim: ClaimView, result: DeviceResult) -> int:
    text = result.consumed.get(MEMORY)
    if text is None:
        raise PrepareRefused(
            f"claim {claim.key}: the allocation of {result.device} records no consumedCapacity.{MEMORY}; "
            f"gpulane devices are shared, so an allocation that does not account memory is refused"
        )
    try:
        mib = parse_bytes(text) // MIB
    except QuantityError as exc:
        raise PrepareRefused(f"claim {claim.key}: consumedCapacity.{MEMORY} of {result.device}: {exc}") from None
    if mib < 1:
        raise PrepareRefused(f"claim {claim.key}: consumedCapacity.{MEMORY}={text} of {result.device} is under 1 MiB")
    return mib


def assignment_of(
    claim: ClaimView, node_name: str, gpus: Sequence[GpuInfo], limit_mib: int, indices: tuple[int, ...]
) -> ann.Assignment:
    """The podcontract Assignment the grant is built from (lane fields from the claim, see module doc)."""
    by_index = {g.index: g for g in gpus}
    present = [k for k in _LANE_KEYS if k in claim.annotations]
    job = JobId(f"{claim.namespace}/{claim.annotations.get(ann.LABEL_JOB) or claim.name}")
    if present:
        lane = claim.annotations.get(ann.LANE, "").strip()
        try:
            if not lane:
                raise ann.AnnotationError(f"annotation {ann.LANE} is missing")
            persistent = _count(claim.annotations, ann.PERSISTENT_MIB)
            ephemeral = _count(claim.annotations, ann.EPHEMERAL_MIB)
        except ann.AnnotationError as exc:
            raise PrepareRefused(f"claim {claim.key}: {exc}") from None
        if persistent > limit_mib:
            raise PrepareRefused(
                f"claim {claim.key}: {ann.PERSISTENT_MIB}={persistent} exceeds the consumed memory {limit_mib} MiB"
            )
    else:
        lane, persistent, ephemeral = f"claim-{claim.uid}", limit_mib, 0
    return ann.Assignment(
        job=job,
        node=NodeName(node_name),
        gpu_indices=indices,
        gpu_uuids=tuple(by_index[i].uuid for i in indices),
        lane=LaneId(lane),
        lane_size_mib=limit_mib - persistent,
        persistent_mib=persistent,
        ephemeral_mib=ephemeral,
        charge_units=0,  # the kubelet counts no device-plugin units for a DRA claim
        job_class=JobClass.GUARANTEED,
    )


def _count(annotations: Mapping[str, str], key: str) -> int:
    text = annotations.get(key, "").strip()
    if not text.isdigit():
        raise ann.AnnotationError(f"annotation {key}={text!r} is not a non-negative integer")
    return int(text)


def claim_grant(
    claim: ClaimView, node_name: str, gpus: Sequence[GpuInfo], coordinator_socket: str, fake_gpu_dir: str = ""
) -> ClaimGrant:
    """Everything NodePrepareResources decides for one claim, or PrepareRefused naming the claim and why."""
    results = our_results(claim, node_name)
    by_index = {g.index: g for g in gpus}
    chosen = [_gpu(claim, r, by_index) for r in results]
    indices = tuple(g.index for g in chosen)
    if len(set(indices)) != len(indices):
        raise PrepareRefused(f"claim {claim.key}: one GPU is allocated to it twice ({', '.join(r.device for r in results)})")
    limit = min(consumed_mib(claim, r) for r in results)
    assignment = assignment_of(claim, node_name, gpus, limit, indices)
    return ClaimGrant(claim.uid, results, grant_for(assignment, limit, coordinator_socket, fake_gpu_dir))
