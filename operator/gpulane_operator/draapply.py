"""Apply a DRA job's placement to its ResourceClaim: create it, allocate it in one status write.

The order for a DRA job is pod -> claim -> claim status (allocation + reservedFor) -> Binding, so
the pod (whose annotations the lanes are rebuilt from) exists before anything is allocated, and an
unbound pod with no allocated claim can never start. Every step is safe to repeat: a claim that is
already there is adopted when it says the same, an allocation is never rewritten (the apiserver
treats it as immutable, and the node agent may have prepared it): if it differs, the pod goes (its
claim with it) and the job is queued again. A definitive error deletes both and fails the job with
the claim's name and the apiserver's reason; an unknown outcome is left to the caller's retry.
"""

from __future__ import annotations

import logging

from gpulane_core.podcontract import Assignment

from gpulane_operator import claims, outcomes
from gpulane_operator.assignment import PodRecord
from gpulane_operator.crd import JobRecord, Reason
from gpulane_operator.k8s import claims as claim_api
from gpulane_operator.k8s import pods
from gpulane_operator.k8s.api import ApiError
from gpulane_operator.runtime import Runtime

log = logging.getLogger(__name__)


async def allocate(rt: Runtime, rec: JobRecord, a: Assignment, pod: PodRecord) -> bool:
    """Make the pod's claim say ``a``; True when the pod may be bound. Raises ApiError when the outcome
    is unknown (the caller retries; the pod stays unbound, nothing that can run is left behind)."""
    assert pod.claim_mib is not None  # only DRA pods get here
    name = pod.name  # the claim is named like its pod
    try:
        return await _allocate(rt, rec, a, pod, pod.claim_mib)
    except ApiError as exc:
        if not exc.definitive:
            raise
        await remove(rt, rec, pod, Reason.FAILED)
        rt.cache.drop(rec.id)
        rt.metrics.placements.labels(result="error").inc()
        rt.write(rec, outcomes.refused(rec, Reason.FAILED, f"claim {name}: {exc.message}", rt.clock(), at_once=True))
        return False


async def _allocate(rt: Runtime, rec: JobRecord, a: Assignment, pod: PodRecord, mib: int) -> bool:
    body = claims.build_claim(rec, a, pod.name, pod.uid, mib, rec.selectors)
    stored, created = await claim_api.create_or_read(rt.api, body)
    if not created and claims.parse_claim(stored).owner_uid != pod.uid:
        # Left by an earlier pod of the same name (no garbage collector yet, or it was slower): that pod
        # is gone, since this one has its name, so nothing uses the claim.
        log.warning("claim %s/%s belonged to an earlier pod: replacing it", rec.namespace, pod.name)
        await claim_api.delete_if_present(rt.api, rec.namespace, pod.name)
        try:
            stored = await rt.api.create_claim(rec.namespace, body)
        except ApiError as exc:
            if exc.conflict:  # the old one is still being deleted: try again later
                raise ApiError(0, f"claim {pod.name} of an earlier pod is still being deleted") from exc
            raise
    uid = str(stored["metadata"]["uid"])
    wanted = claims.allocation(a, mib, uid)
    status = stored.get("status") or {}
    current = status.get("allocation")
    if current is None:
        patch = claims.status_patch(a, mib, uid, pod.name, pod.uid)
        await claim_api.write_status(rt.api, rec.namespace, pod.name, patch)
        return True
    if not claims.same_allocation(current, wanted):
        message = f"claim {pod.name} is allocated differently from the job's placement; the job is placed again"
        log.error("%s: %s", rec.id, message)
        await remove(rt, rec, pod, Reason.POD_DELETED)
        rt.write(rec, outcomes.retrying(rec, message, rt.clock(), at_once=True))
        return False
    reserved = status.get("reservedFor") or ()
    if not any(r.get("uid") == pod.uid for r in reserved):
        patch = {"status": {"reservedFor": [{"resource": "pods", "name": pod.name, "uid": pod.uid}]}}
        await claim_api.write_status(rt.api, rec.namespace, pod.name, patch)
    return True


async def remove(rt: Runtime, rec: JobRecord, pod: PodRecord, reason: Reason) -> None:
    """Delete the pod (remembering why, so its DELETED event leaves the job to us) and its claim: the
    garbage collector would collect the claim too, but not before the pod's name is free again."""
    rt.cache.mark_deleting(rec.id, reason)
    await pods.delete_if_present(rt.api, rec.namespace, pod.name)
    await claim_api.delete_if_present(rt.api, rec.namespace, pod.name)
