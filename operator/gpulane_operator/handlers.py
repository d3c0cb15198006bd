"""kopf handlers: thin glue from watch events to the pure decisions and the k8s layer.

Run with ``gpulane operator`` (which loads settings and calls kopf) or ``kopf run -m
gpulane_operator.handlers`` (settings then come from the environment and GPULANE_OPERATOR_CONFIG).
Only watch-event handlers (``on.event``) and indexes see jobs, pods and nodes, so kopf keeps no
per-object state on the hot path: no finalizer, no progress or diff-base annotations, no Events of its
own. A new job's watch event pokes the scheduling loop; only a job that had to wait (its status says
why) gets a kopf daemon, which holds the loop for resyncs and which kopf stops when peering pauses
this replica (see runtime.CycleRunner). A deleted job's DELETED event deletes its pod.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import kopf
from gpulane_core.podcontract import LABEL_JOB, MANAGED_BY, MANAGER

from gpulane_operator import cycle, indexes, lifecycle, peering, peerwatch
from gpulane_operator.assignment import parse_pod, pod_name
from gpulane_operator.claims import parse_claim
from gpulane_operator.crd import JobRecord, Phase, Reason, parse_job
from gpulane_operator.decide import job_counts
from gpulane_operator.indexes import claim_index, gpunode_index, gsj_index, node_index, pod_index, slice_index
from gpulane_operator.k8s import claims, pods
from gpulane_operator.k8s.api import ApiError, AsyncKubeApi
from gpulane_operator.metrics import OperatorMetrics
from gpulane_operator.names import GPUNODES, GROUP, PLURAL, VERSION
from gpulane_operator.runtime import CycleRunner, Runtime
from gpulane_operator.selectors import DRIVER
from gpulane_operator.settings import ENV_CONFIG_FILE, OperatorSettings, load

__all__ = ["claim_index", "gpunode_index", "gsj_index", "node_index", "pod_index", "slice_index"]
STORAGE_PREFIX = "kopf.gpulane.dev"


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff-base for an operator with no change-detecting handlers: every object's essence is
    empty, so kopf neither copies bodies to build one nor sees a diff. kopf uses the diff only for
    on.update/on.field handlers (none here) and to reset daemons' idle timers (none here)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> Any:
        return {}

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def _settings(memo: Any) -> OperatorSettings:
    given = memo.get("settings")
    if isinstance(given, OperatorSettings):
        return given
    path = os.environ.get(ENV_CONFIG_FILE)
    return load(Path(path).read_text() if path else None, os.environ)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config = _settings(memo)
    # There are no change-detecting handlers (on.create/update/delete/resume), so kopf writes neither
    # progress nor diff-base; annotations (not status) keep it that way should one ever be added. The
    # diff-base is not even built (kopf deep-copies every watched body for it, a tenth of the operator's CPU).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    # Only gpulane's pods, filtered by the apiserver: kopf would otherwise list and watch every pod in the
    # watched namespaces (all of them by default), and each listed object lengthens kopf's start (see the log line below).
    settings.watching.label_selectors["", "v1", "pods"] = f"{MANAGED_BY}={MANAGER},{LABEL_JOB}"
    settings.posting.enabled = False  # kopf's own Events for log lines: one POST per warning, on the hot path
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    metrics = OperatorMetrics()
    metrics.serve(config.metrics.port)
    rt = Runtime(config, await AsyncKubeApi.connect(), metrics)
    # kopf runs no handler before it has listed every indexed kind, and that wait costs time quadratic in
    # the objects listed meanwhile (every object indexed wakes every worker already waiting): say so.
    logging.getLogger(__name__).info(
        "scheduling starts once kopf has listed every GPUShareJob, gpulane pod, Node, GPUNode, ResourceClaim"
        " and ResourceSlice into its indexes (the first cycle logs what they hold)"
    )
    live = dict(kwargs)  # kopf's indexes: live objects, filled before any resource handler runs
    s = config.scheduling
    # A replica taking over from another lets the old one's in-flight pod creations reach the watch first.
    handover = 0.0 if config.peering.standalone else config.peering.handover_s
    not_before = asyncio.get_running_loop().time() + handover
    def views_now() -> cycle.Views:
        v = indexes.views(live, rt.selector)
        return dataclasses.replace(v, jobs=rt.current_jobs(v.jobs))

    rt.runner = CycleRunner(
        lambda: cycle.run(rt, views_now), s.debounce_s, s.resync_s, not_before, live_s=config.peering.live_s()
    )
    rt.wakeups.sweep = lambda: cycle.sweep_losses(rt, views_now())
    memo["runtime"] = rt
    if not config.peering.standalone:
        identity = memo.get("identity") or peering.operator_identity(os.environ)
        mine = peering.targets(config.peering.name, config.scope.namespaces, identity, config.peering.priority)
        memo["peerwatch"] = asyncio.create_task(peerwatch.watch(rt.api, mine, rt.clock), name="gpulane peering watch")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    watching: asyncio.Task[None] | None = memo.get("peerwatch")
    if watching is not None:
        watching.cancel()
    rt: Runtime | None = memo.get("runtime")
    if rt is None:
        return
    rt.wakeups.cancel()
    if rt.runner is not None:
        await rt.runner.stop()
    await rt.drain()
    await rt.status.close()
    await rt.events.close()
    await rt.api.close()


def _is_waiting(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    """Pending with Scheduled=False for a reason other than Queued: unschedulable, preempting, evicted,
    or retrying a failed placement. Those may need a resync; a new job (no conditions) and a Queued one
    (waiting for capacity, its turn, or the device plugin) are moved on by pod and node watch events, so
    they get no daemon and kopf adds no finalizer to them (two PATCHes and their watch events)."""
    phase = status.get("phase") or Phase.PENDING.value
    if phase != Phase.PENDING.value or meta.get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Scheduled" and c.get("status") == "False" and c.get("reason") != Reason.QUEUED.value
        for c in status.get("conditions") or ()
    )


@kopf.daemon(GROUP, VERSION, PLURAL, when=_is_waiting, cancellation_timeout=1.0)
async def queued(stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    """Holds the scheduling loop while this job waits; kopf stops it once the job leaves the queue."""
    rt: Runtime = memo["runtime"]
    if rt.runner is not None:
        await rt.runner.hold(stopped)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def job_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    rt: Runtime = memo["runtime"]
    rec = parse_job(body)
    _seen_event(rt)
    pod = indexes.lookup(kwargs, "pod_index", rec.id)
    claim = pod is not None and pod.claim_mib is not None
    if type == "DELETED":
        _job_gone(rt, rec, pod is not None, claim)
        return
    rt.queue.seen.setdefault(rec.id, rt.clock())
    if rec.pending or rec.deleting:
        rt.poke()
    _refresh_counts(rt, kwargs)
    if rec.deleting and pod is not None and not pod.deleting and rec.id not in rt.cache.deleting:
        _job_gone(rt, rec, True, claim)  # another finalizer holds the job: its pod need not wait for that
        return
    cycle.apply_sync(rt, rec, lifecycle.sync(rt.current(rec), pod, rt.clock()))


def _seen_event(rt: Runtime) -> None:
    if rt.runner is not None:
        rt.runner.seen_event()


def _job_gone(rt: Runtime, rec: JobRecord, has_pod: bool, claim: bool = False) -> None:
    """The job is deleted: its pod goes, so its lane is freed. A failed delete is retried by the orphan
    cleanup (each cycle, and each pod event of a pod without a job), and on a restart by the pod listing;
    so is a pod whose create was still in flight (no pod in the index: no DELETE call now)."""
    rt.queue.forget(rec.id)
    rt.status.discard(rec.id)  # a write still queued would only meet a 404
    rt.poke()
    if not has_pod:
        return
    # The assumption stays until the watch shows the pod (or it expires): a create still in flight
    # may yet make the pod, and its lane must stay counted until the orphan pod is deleted too.
    rt.cache.mark_deleting(rec.id, Reason.POD_DELETED)
    rt.spawn(set(), _delete_pod(rt, rec, claim))


async def _delete_pod(rt: Runtime, rec: JobRecord, claim: bool) -> None:
    try:
        async with rt.limit:
            await pods.delete_if_present(rt.api, rec.namespace, pod_name(rec.name))
            if claim:  # a DRA pod's claim: the garbage collector would take it too, if one runs
                await claims.delete_if_present(rt.api, rec.namespace, pod_name(rec.name))
    except ApiError as exc:
        logging.getLogger(__name__).warning("pod of deleted job %s not deleted yet (%s): the orphan cleanup retries",
                                            rec.id, exc)  # fmt: skip


def _refresh_counts(rt: Runtime, kwargs: dict[str, Any]) -> None:
    """Jobs-by-phase and queue gauges, at most once a second (cycles refresh them too)."""
    now = rt.clock()
    if now - rt.marks.counts_at < 1.0:
        return
    rt.marks.counts_at = now
    rt.metrics.observe_counts(*job_counts(indexes.jobs_of(kwargs)))


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY: MANAGER, LABEL_JOB: kopf.PRESENT})
async def pod_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    rt: Runtime = memo["runtime"]
    pod = parse_pod(body)
    _seen_event(rt)
    rt.poke()
    if pod is None:
        return
    if type != "DELETED" and pod.assignment is not None:
        # kopf updated the pod index before calling us, so every later cycle counts this pod's lane
        # itself: the assumption made when it was created is no longer needed.
        rt.cache.drop(pod.job)
    rec = indexes.lookup(kwargs, "gsj_index", pod.job)
    if rec is None:
        if type != "DELETED" and not pod.deleting:
            await cycle.delete_orphan(rt, pod)  # its job is gone (kopf's indexes are complete here)
        return
    if type == "DELETED":
        if rt.cache.deletion_seen(pod.job):
            return  # the operator deleted it and has already re-queued or failed the job
        cycle.apply_sync(rt, rec, lifecycle.after_pod_gone(rt.current(rec), rt.clock()))
        return
    cycle.apply_sync(rt, rec, lifecycle.sync(rt.current(rec), pod, rt.clock()))


@kopf.on.event("resource.k8s.io", "v1", "resourceclaims")
async def claim_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A claim of our driver that someone else allocated or released changes what the GPUs hold."""
    rt: Runtime = memo["runtime"]
    _seen_event(rt)
    claim = parse_claim(body)
    if not claim.ours and claim.results:
        rt.poke()


@kopf.on.event("resource.k8s.io", "v1", "resourceslices")
async def slice_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A gpu.gpulane.dev slice published, changed or gone: DRA jobs waiting for its GPUs may go."""
    rt: Runtime = memo["runtime"]
    _seen_event(rt)
    if (body.get("spec") or {}).get("driver") == DRIVER:
        rt.poke()


@kopf.on.event("", "v1", "nodes")
async def node_changed(memo: kopf.Memo, **kwargs: Any) -> None:
    await _inventory_changed(memo["runtime"], kwargs)


@kopf.on.event(GROUP, VERSION, GPUNODES)
async def gpunode_changed(memo: kopf.Memo, **kwargs: Any) -> None:
    await _inventory_changed(memo["runtime"], kwargs)


async def _inventory_changed(rt: Runtime, kwargs: dict[str, Any]) -> None:
    _seen_event(rt)
    name = str(kwargs["body"]["metadata"]["name"])  # a GPUNode is named after its Node
    now = indexes.node_inventory(kwargs, rt.selector, name)
    known = rt.marks.last_inventory
    if name in known and known[name] == now:
        return  # a heartbeat: nothing placement-relevant changed
    known[name] = now
    rt.poke()
    await cycle.sweep_losses(rt, indexes.views(kwargs, rt.selector))
