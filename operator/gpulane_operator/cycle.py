"""Apply one scheduling cycle: snapshot, decide (pure), then act through the k8s layer.

Order of effects for a placement, chosen so a crash at any point is recoverable: remember the
assumption, create the pod carrying its assignment (the durable record), bind it, then write the
job's status. A restart finds the pod, counts its lane, and finishes binding and status.
Status writes and Events are queued (rt.status coalesces a job's writes, rt.events posts rate-limited):
the Scheduled status waits for the pod to run (outcomes.SCHEDULED_WINDOW_S) and goes out with Running, so a
placement costs a pod create, a Binding, one status write and one Event.
A DRA job's placement adds its ResourceClaim between the pod and the Binding (draapply): a create
and one status write. Removals of pods (losses, preemption, orphans) live in removals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gpulane_core.podcontract import Assignment

from gpulane_operator import draapply, lifecycle, outcomes
from gpulane_operator.assignment import PodRecord, parse_pod, pod_name
from gpulane_operator.crd import JobRecord, Reason
from gpulane_operator.decide import job_counts, pods_lost_while_away, prepare
from gpulane_operator.k8s import binding, pods
from gpulane_operator.k8s.api import ApiError
from gpulane_operator.podspec import build_pod, same_assignment
from gpulane_operator.removals import (
    delete_orphan,
    evict,
    gather,
    lose,
    lost,
    orphan_pods,
    preempt,
    sweep_losses,
)
from gpulane_operator.runtime import Runtime
from gpulane_operator.spill import plan_cycle
from gpulane_operator.views import Views

__all__ = ["Views", "apply_sync", "delete_orphan", "orphan_pods", "run", "sweep_losses"]
log = logging.getLogger(__name__)
FIRST_CYCLE = "first scheduling cycle"  # logged once the indexes are complete (benches wait for it)


async def run(rt: Runtime, views: Callable[[], Views]) -> None:
    """One cycle. Views are taken under the lock: a cycle must never see older pods than the one
    before it, or a dropped assumption could hide a lane."""
    async with rt.lock:
        await _run(rt, views())


async def _run(rt: Runtime, views: Views) -> None:
    started = time.monotonic()
    rt.expire_assumptions(set(views.pods))
    # Read once: pod_changed drops an assumption as soon as the watch shows its pod, which can happen
    # during the awaits below, while `views.pods` (taken earlier) still lacks that pod.
    assumed = rt.cache.assignments()
    prepared = prepare(
        views.jobs, views.pods, assumed, views.inventory, rt.queue.waiting, rt.background.inflight, rt.queue.seen,
        now=rt.clock(), loss_grace_s=rt.settings.scheduling.node_loss_grace_s, existing_nodes=views.nodes,
        foreign=views.foreign(), allocation=rt.settings.scheduling.allocation, selectors=rt.selectors,
        published=views.published(), memo=rt.snapshot_memo,
    )  # fmt: skip
    rt.wake_at(prepared.snapshot.loss_deadlines)
    now = rt.clock()
    for problem in prepared.snapshot.problems:
        log.error("lane invariant broken in observed state: %s", problem)
    await gather(rt, [lose(rt, item, views) for item in lost(rt, prepared.snapshot.lost, views)])
    await gather(rt, [delete_orphan(rt, pod) for pod in orphan_pods(views)])
    if not rt.marks.swept_at_start:
        rt.marks.swept_at_start = True
        log.info("%s: kopf's indexes hold %d jobs, %d gpulane pods and %d nodes, %.1fs after startup",
                 FIRST_CYCLE, len(views.jobs), len(views.pods), len(views.nodes), time.monotonic() - rt.marks.started_at)  # fmt: skip
        for rec in pods_lost_while_away(views.jobs, views.pods, assumed, rt.background.inflight | set(rt.cache.deleting)):
            log.warning("job %s is %s but its pod is gone (deleted while no operator watched): queued again",
                        rec.id, rec.phase.value)  # fmt: skip
            apply_sync(rt, rec, lifecycle.after_pod_gone(rec, now))
    # Planned in a worker thread (pure, on this cycle's own copies): at 1,000 nodes a burst's plan takes
    # seconds, and meanwhile the event loop keeps the last cycle's creates, binds and watch events going.
    config = rt.settings.scheduler_config()
    result, decided = await asyncio.to_thread(plan_cycle, prepared, config, now, views.jobs, views.pods, assumed)
    rt.queue.waiting = dict(decided.waiting)
    for job, a in ((rec.id, a) for rec, a in decided.creates):
        rt.cache.assume(job, a)  # before any await: the next cycle must already count these lanes
    calls: list[Awaitable[None]] = [preempt(rt, p, views) for p in decided.preemptions]
    calls += [_place(rt, rec, a, decided.claims.get(rec.id)) for rec, a in decided.creates]
    calls += [_resume(rt, rec, pod) for rec, pod in prepared.resumes]
    calls += [_reject(rt, rec, Reason.INVALID) for rec in prepared.invalid]
    calls += [_reject(rt, rec, Reason.UNSCHEDULABLE) for rec in prepared.unfit]
    touched = {rec.id for rec, _ in decided.creates} | {rec.id for rec, _ in prepared.resumes}
    touched |= {rec.id for rec in (*prepared.invalid, *prepared.unfit)} | {p.victim for p in decided.preemptions}
    for rec in prepared.unpublished:
        touched.add(rec.id)
        calls.append(_queue(rt, rec, Reason.UNSCHEDULABLE, rec.error, None))
    for u in decided.unschedulable:
        if u.record.id in rt.background.inflight:
            continue
        touched.add(u.record.id)
        calls.append(_queue(rt, u.record, u.reason, u.message, u.position))
        rt.metrics.unschedulable.labels(reason=u.reason.value).inc()
    if calls:
        rt.spawn(touched, gather(rt, calls))
    if now - rt.marks.state_observed_at >= 1.0:  # per-GPU gauges cost ~10 ms at 800 GPUs: once a second is enough
        rt.marks.state_observed_at = now
        rt.metrics.observe_state(result.state)
        rt.metrics.observe_counts(*job_counts(views.jobs))
    rt.metrics.cycles.labels(result="ok").inc()
    if decided.creates or decided.preemptions or prepared.resumes:
        log.info(
            "cycle: %d queued, %d placed, %d resumed, %d preempted, %d unschedulable in %.3fs",
            len(prepared.pending), len(decided.creates), len(prepared.resumes), len(decided.preemptions),
            len(result.unschedulable), time.monotonic() - started,
        )  # fmt: skip


def apply_sync(rt: Runtime, rec: JobRecord, patch: dict[str, Any] | None) -> None:
    """Write a lifecycle patch (the job agreeing with its pod) and the Event that goes with it."""
    if patch is not None:
        rt.write(rec, outcomes.synced(patch))


async def _place(rt: Runtime, rec: JobRecord, a: Assignment, claim_mib: int | None) -> None:
    try:
        await _create_and_bind(rt, rec, a, claim_mib)
    except (ApiError, OSError) as exc:
        _retry_later(rt, rec, f"placing the job failed ({exc}); it is tried again")
        raise


def _retry_later(rt: Runtime, rec: JobRecord, message: str) -> None:
    """A placement whose outcome is unknown: the job says so, and with that reason it gets a kopf daemon
    that holds the scheduling loop for resyncs (its assumption may have to expire first)."""
    rt.write(rec, outcomes.retrying(rec, message, rt.clock()))


async def _create_and_bind(rt: Runtime, rec: JobRecord, a: Assignment, claim_mib: int | None) -> None:
    try:
        pod, created = await pods.create_or_adopt(rt.api, build_pod(rec, a, claim_mib))
    except ApiError as exc:
        if exc.definitive:
            rt.cache.drop(rec.id)
            rt.metrics.placements.labels(result="error").inc()
            rt.write(rec, outcomes.refused(rec, Reason.FAILED, f"the pod cannot be created: {exc.message}", rt.clock()))
            return
        raise  # outcome unknown: keep the assumption until the watch shows the pod or it expires
    existing = parse_pod(pod)
    if not created:
        same = same_assignment((pod.get("metadata") or {}).get("annotations") or {}, a)
        unusable = existing is None or existing.deleting or existing.terminal
        chosen = outcomes.adopted(a, None if existing is None else existing.assignment, unusable, same)
        if chosen is None:
            rt.cache.drop(rec.id)
            log.warning("pod %s exists but cannot be adopted for %s; retrying later", pod_name(rec.name), rec.id)
            return
        if not same:
            a = chosen
            rt.cache.assume(rec.id, a)
    if existing is None:
        return  # not a gpulane pod: cannot happen for a body built by build_pod
    await _bind_and_report(rt, rec, a, existing)


async def _bind_and_report(rt: Runtime, rec: JobRecord, a: Assignment, pod: PodRecord) -> None:
    """Allocate a DRA pod's claim (what the pod says decides whether it is one), bind, report."""
    dra = pod.claim_mib is not None
    if dra and not pod.bound_node and not await draapply.allocate(rt, rec, a, pod):
        return
    try:
        await binding.bind_if_unbound(rt.api, rec.namespace, pod_name(rec.name), a.node, pod.bound_node)
    except binding.BindConflict as exc:
        log.error("%s; deleting the pod so the job is placed again", exc)
        await evict(rt, rec.id, Reason.POD_DELETED, claim=dra)
        return
    now = rt.clock()
    log.info("bound %s to %s GPU %s %s", rec.id, a.node, ",".join(map(str, a.gpu_indices)), a.lane)
    rt.write(rec, outcomes.placed(rec, a, now, pod.name if dra else None))
    rt.cache.report(rec.id)
    rt.metrics.placements.labels(result="bound").inc()
    rt.metrics.placement_latency.observe(max(0.0, now - rec.created_s))


async def _resume(rt: Runtime, rec: JobRecord, pod: PodRecord) -> None:
    """A queued job whose pod exists (crash after create, or a status patch lost): finish it."""
    if pod.assignment is None or rec.id in rt.cache.deleting:
        return
    if rec.id in rt.cache.reported and pod.bound_node:
        return  # this process already wrote Scheduled; the job watch has not shown it yet
    try:
        await _bind_and_report(rt, rec, pod.assignment, pod)
    except (ApiError, OSError) as exc:
        _retry_later(rt, rec, f"binding its pod failed ({exc}); it is tried again")
        raise


async def _reject(rt: Runtime, rec: JobRecord, reason: Reason) -> None:
    """A job that can never run as specified (rec.error says why): Failed, nothing created."""
    rt.write(rec, outcomes.refused(rec, reason, rec.error, rt.clock()))


async def _queue(rt: Runtime, rec: JobRecord, reason: Reason, message: str, position: int | None) -> None:
    rt.write(rec, outcomes.queued(rec, reason, message, position, rt.clock()))
