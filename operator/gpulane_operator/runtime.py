"""The operator's mutable, per-process state, kept in kopf's ``memo`` (never in module globals).

It holds what the API cannot tell yet: placements whose pods the watch has not shown (so no cycle
double-books in that gap), pods this process is deleting and why, and preemptors waiting for
their victims. Losing it (a crash) is safe: pods carry their assignments, and a pod in flight is
either visible after a restart or was never created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpulane_core.model import JobId, NodeName
from gpulane_core.podcontract import Assignment

from gpulane_operator.crd import JobRecord, Reason
from gpulane_operator.inventory import parse_selector
from gpulane_operator.k8s.api import KubeApi
from gpulane_operator.k8s.events import EventPoster
from gpulane_operator.k8s.status import StatusWriter
from gpulane_operator.metrics import OperatorMetrics
from gpulane_operator.selectors import SelectorCache
from gpulane_operator.settings import LIVE_S, OperatorSettings
from gpulane_operator.snapshot import SnapshotMemo
from gpulane_operator.statuses import compose, overlay

log = logging.getLogger(__name__)
# An assumption the watch has not confirmed is forgotten this long after its job's API actions finished
# (the watch shows real pods sooner). Counted from the end of those actions, never from the decision: under
# load a pod create can wait in the request queue for longer than this, and an assumption dropped before the
# watch shows its pod hides that pod's lane from the next cycle, which then books the lane twice.
ASSUMED_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Assumed:
    assignment: Assignment
    since_s: float  # when it was made, or when its job's last API actions finished


class CycleRunner:
    """Runs scheduling cycles one at a time, after watch events, and every ``resync_s`` while held.

    Jobs that had to wait (their status says why) have a kopf daemon that calls :meth:`hold`; kopf stops
    those daemons when the job is placed or when peering pauses this replica. A new job needs no daemon:
    its watch event pokes the loop, which runs while held or for ``live_s`` after the last watch event.
    A paused replica gets no watch events (kopf closes its streams) and no daemons, so it stops within
    ``live_s``, less than the peering handover a new active replica waits. The cycle runs in its own
    task: a daemon being stopped never cancels a cycle halfway.
    """

    def __init__(
        self, cycle: Callable[[], Awaitable[None]], debounce_s: float, resync_s: float, not_before: float = 0.0,
        live_s: float = LIVE_S,
    ) -> None:  # fmt: skip
        self._cycle = cycle
        self._not_before = not_before  # loop.time() before which no cycle starts (peering handover)
        self._debounce_s = debounce_s
        self._resync_s = resync_s
        self._live_s = live_s
        self._live_until = 0.0  # loop.time() until which a poke runs a cycle without any holder
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_cycle_s = 0.0
        self.holders = 0

    def seen_event(self) -> None:
        """A watch event arrived: this replica is watching, so it may schedule for ``live_s`` more. Events
        during the peering handover count until ``live_s`` after it: the jobs listed at start must get their
        first cycle even when no further event comes (kopf starts a peered replica paused, so these events
        mean it was let through)."""
        now = asyncio.get_running_loop().time()
        self._live_until = max(now, self._not_before) + self._live_s
        self._start()

    def poke(self) -> None:
        self._wake.set()

    def _active(self) -> bool:
        return self.holders > 0 or asyncio.get_running_loop().time() < self._live_until

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="gpulane scheduling loop")

    async def hold(self, stopped: Any) -> None:
        self.holders += 1
        self.poke()
        self._start()
        try:
            await stopped.wait()
        finally:
            self.holders -= 1

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._active():
            timeout = self._resync_s if self.holders > 0 else max(0.01, self._live_until - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            if not self._wake.is_set():
                if self.holders > 0:
                    self._wake.set()  # a resync: waiting jobs are looked at again
                continue
            self._wake.clear()
            # At least as long as the last cycle took: cycles then get at most half of the event loop, and
            # the watch events that tell the next cycle what changed are never starved by cycles.
            pause = max(self._debounce_s, self._last_cycle_s)
            await asyncio.sleep(max(pause, self._not_before - loop.time()))
            if not self._active():
                break
            began = loop.time()
            try:
                await self._cycle()
            except Exception:
                log.exception("scheduling cycle failed; retrying after the next change or resync")
            self._last_cycle_s = loop.time() - began

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Runtime:
    settings: OperatorSettings
    api: KubeApi
    metrics: OperatorMetrics
    clock: Callable[[], float] = time.time
    assumed: dict[JobId, Assumed] = field(default_factory=dict)
    deleting: dict[JobId, tuple[Reason, float]] = field(default_factory=dict)
    waiting: dict[JobId, frozenset[JobId]] = field(default_factory=dict)
    reported: dict[JobId, float] = field(default_factory=dict)  # when this process wrote Scheduled
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one cycle or loss sweep at a time
    runner: CycleRunner | None = None
    inflight: set[JobId] = field(default_factory=set)  # jobs whose API actions are still running
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    limit: asyncio.Semaphore = field(init=False)  # API calls in flight, over all cycles
    selector: dict[str, str | None] = field(init=False)  # scope.node_selector, parsed once
    seen: dict[JobId, float] = field(default_factory=dict)  # when each job's first event arrived
    counts_at: float = 0.0  # when a job event last refreshed the jobs-by-phase and queue gauges
    swept_at_start: bool = False  # the first cycle looked for pods deleted while no operator watched
    started_at: float = field(default_factory=time.monotonic)  # when this process's runtime was made
    state_observed_at: float = 0.0  # when a cycle last refreshed the per-GPU lane gauges (and those counts)
    last_inventory: dict[Any, Any] = field(default_factory=dict)  # to skip sweeps on node heartbeats
    # A NotReady node sends no more watch events: a loss sweep is scheduled for when its grace ends.
    sweep: Callable[[], Coroutine[Any, Any, None]] | None = None
    wakeups: dict[NodeName, tuple[float, asyncio.TimerHandle]] = field(default_factory=dict)
    selectors: SelectorCache = field(default_factory=SelectorCache)  # DRA jobs' compiled device selectors
    snapshot_memo: SnapshotMemo = field(default_factory=SnapshotMemo)  # unchanged GPUs' lanes, cycle to cycle
    status: StatusWriter = field(init=False)  # every job status write goes through it (coalesced)
    events: EventPoster = field(init=False)  # every Event goes through it (rate-limited)

    def __post_init__(self) -> None:
        self.limit = asyncio.Semaphore(self.settings.scheduling.max_concurrent_requests)
        self.selector = parse_selector(self.settings.scope.node_selector)
        self.status = StatusWriter(self.api, self.limit, compose)
        self.events = EventPoster(self.api)

    def current(self, rec: JobRecord) -> JobRecord:
        """``rec`` with the status this process has decided but not yet seen written."""
        body = self.status.pending(rec.id)
        return rec if body is None else overlay(rec, body)

    def current_jobs(self, jobs: Mapping[JobId, JobRecord]) -> dict[JobId, JobRecord]:
        out = dict(jobs)
        for job in self.status.jobs():
            if job in out:
                out[job] = self.current(out[job])
        return out

    def spawn(self, jobs: set[JobId], work: Coroutine[Any, Any, None]) -> None:
        """Run a cycle's API actions in the background: the next cycle need not wait for them,
        because their lanes are already assumed and their jobs are skipped until they finish."""
        self.inflight |= jobs

        def finished(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            self.inflight -= jobs
            self._settled(jobs)
            if not task.cancelled() and task.exception() is not None:
                log.error("applying a cycle failed", exc_info=task.exception())
            self.poke()

        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(finished)

    async def drain(self) -> None:
        """Wait for every background action, then write queued statuses and Events now (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self.status.flush()
        await self.events.flush()

    def assume(self, job: JobId, assignment: Assignment) -> None:
        self.assumed[job] = Assumed(assignment, self.clock())

    def forget_confirmed(self, visible: set[JobId]) -> None:
        """Drop assumptions the watch has confirmed, and stale ones whose pod never appeared."""
        now = self.clock()
        for job in list(self.assumed):
            expired = now - self.assumed[job].since_s > ASSUMED_TTL_S and job not in self.inflight
            if job in visible or expired:
                del self.assumed[job]
        for job in list(self.reported):
            if now - self.reported[job] > ASSUMED_TTL_S:
                del self.reported[job]
        for job in list(self.deleting):
            if job not in visible and now - self.deleting[job][1] > ASSUMED_TTL_S:
                del self.deleting[job]

    def _settled(self, jobs: set[JobId]) -> None:
        """The API actions of these jobs have finished: their assumptions' TTL starts now."""
        now = self.clock()
        for job in jobs & self.assumed.keys():
            self.assumed[job] = Assumed(self.assumed[job].assignment, now)

    def mark_deleting(self, job: JobId, reason: Reason) -> None:
        self.deleting[job] = (reason, self.clock())

    def assumed_assignments(self) -> dict[JobId, Assignment]:
        return {job: a.assignment for job, a in self.assumed.items()}

    def poke(self) -> None:
        if self.runner is not None:
            self.runner.poke()

    def wake_at(self, deadlines: Mapping[NodeName, float]) -> None:
        """Run a loss sweep when each NotReady node's grace ends (once per node and deadline)."""
        if self.sweep is None:
            return
        loop = asyncio.get_running_loop()
        for node, deadline in deadlines.items():
            known = self.wakeups.get(node)
            if known is not None and known[0] == deadline:
                continue
            if known is not None:
                known[1].cancel()
            delay = max(0.0, deadline - self.clock()) + 0.2  # just past the deadline
            log.info("node %s is NotReady; its jobs are handled as lost in %.0fs (on_node_loss=%s) unless it returns",
                     node, delay, self.settings.scheduling.on_node_loss)  # fmt: skip
            self.wakeups[node] = (deadline, loop.call_later(delay, self._sweep_now))

    def _sweep_now(self) -> None:
        if self.sweep is not None:
            self.spawn(set(), self.sweep())

    def cancel_wakeups(self) -> None:
        for _, handle in self.wakeups.values():
            handle.cancel()
        self.wakeups.clear()
