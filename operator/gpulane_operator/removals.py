"""Removing pods (and a DRA pod's claim): lost nodes and GPUs, preemption victims, orphans.

Each removal remembers why (``rt.cache.mark_deleting``), so the pod-deleted handler leaves the job to the
code that already re-queued or failed it; the job's status is written at once, because after a crash
no watch event would tell a restarted operator that the pod was deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from gpulane_core.model import JobId
from gpulane_core.scheduler import Preemption

from gpulane_operator import outcomes
from gpulane_operator.assignment import PodRecord, pod_name
from gpulane_operator.crd import Reason, split_job_id
from gpulane_operator.decide import live_assignments, lost_to_handle
from gpulane_operator.k8s import claims as claim_api
from gpulane_operator.k8s import pods
from gpulane_operator.k8s.api import ApiError
from gpulane_operator.runtime import Runtime
from gpulane_operator.snapshot import Lost, build
from gpulane_operator.views import Views

log = logging.getLogger(__name__)


async def gather(rt: Runtime, calls: list[Awaitable[None]]) -> None:
    async def one(call: Awaitable[None]) -> None:
        async with rt.limit:
            try:
                await call
            except ApiError as exc:
                log.warning("API call failed (retried next cycle): %s", exc)

    await asyncio.gather(*(one(c) for c in calls))


def lost(rt: Runtime, lost: tuple[Lost, ...], views: Views) -> list[Lost]:
    return [item for item in lost_to_handle(lost, views.jobs) if item.job not in rt.cache.deleting]


async def sweep_losses(rt: Runtime, views: Views) -> None:
    """Handle lost nodes and GPUs now (called on Node/GPUNode changes, even with an empty queue)."""
    async with rt.lock:  # assumptions are only dropped by scheduling cycles
        live = [*live_assignments(views.pods, rt.cache.assignments()).values(), *views.foreign()]
        snapshot = build(views.inventory, live, now=rt.clock(), loss_grace_s=rt.settings.scheduling.node_loss_grace_s,
                         existing_nodes=views.nodes, memo=rt.snapshot_memo)  # fmt: skip
        rt.wake_at(snapshot.loss_deadlines)
        await gather(rt, [lose(rt, item, views) for item in lost(rt, snapshot.lost, views)])


def orphan_pods(views: Views) -> list[PodRecord]:
    """Pods whose GPUShareJob is gone (force-deleted past its finalizer): they must not keep a lane."""
    return [pod for job, pod in views.pods.items() if job not in views.jobs and not pod.deleting]


async def delete_orphan(rt: Runtime, pod: PodRecord) -> None:
    """Delete a pod whose GPUShareJob is gone (what the garbage collector does with owner references)."""
    log.warning("deleting pod %s/%s: its GPUShareJob %s is gone", pod.namespace, pod.name, pod.job)
    await pods.delete_if_present(rt.api, pod.namespace, pod.name)
    if pod.claim_mib is not None:  # without a garbage collector its claim would stay
        await claim_api.delete_if_present(rt.api, pod.namespace, pod.name)


async def evict(rt: Runtime, job: JobId, reason: Reason, *, force: bool = False, claim: bool = False) -> None:
    """Delete a job's pod, remembering why, so the pod-deleted handler leaves the job to us; ``claim``:
    its ResourceClaim too (a DRA pod), so the name is free when the job is placed again."""
    rt.cache.mark_deleting(job, reason)
    namespace, name = split_job_id(job)
    await pods.delete_if_present(rt.api, namespace, pod_name(name), force=force)
    if claim:
        await claim_api.delete_if_present(rt.api, namespace, pod_name(name))


def has_claim(views: Views, job: JobId) -> bool:
    pod = views.pods.get(job)
    return pod is not None and pod.claim_mib is not None


async def lose(rt: Runtime, item: Lost, views: Views) -> None:
    rec = views.jobs[item.job]
    log.warning("evicting %s from %s: %s (%s)", item.job, item.node, item.message, item.reason.value)
    # The snapshot decided whether a kubelet will ever confirm the pod's end (force_delete); on a live
    # node the pod's memory stays counted until its containers have really stopped.
    await evict(rt, item.job, item.reason, force=item.force_delete, claim=has_claim(views, item.job))
    # Written at once: after a crash no watch event would tell a restarted operator the pod was deleted.
    rt.write(rec, outcomes.node_lost(rec, item, rt.settings.scheduling.on_node_loss, rt.clock()))


async def preempt(rt: Runtime, p: Preemption, views: Views) -> None:
    victim = views.jobs.get(p.victim)
    await evict(rt, p.victim, Reason.PREEMPTED, claim=has_claim(views, p.victim))
    rt.metrics.preemptions.inc()
    if victim is not None:
        rt.write(victim, outcomes.preempted(victim, p, rt.clock()))  # at once, as in lose: its pod is gone
    preemptor = views.jobs.get(p.for_job)
    if preemptor is not None:
        rt.write(preemptor, outcomes.preempting(p))
