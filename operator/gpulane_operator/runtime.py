"""The operator's mutable, per-process state, kept in kopf's ``memo`` (never in module globals).

:class:`Runtime` composes the stores of what the API cannot tell yet (stores.py: assumed placements,
deletions, the queue's memory, node wakeups) with the API writers; :class:`CycleRunner` decides when
a scheduling cycle runs.
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

from gpulane_operator.crd import JobRecord
from gpulane_operator.inventory import parse_selector
from gpulane_operator.k8s.api import KubeApi
from gpulane_operator.k8s.events import EventPoster, JobRef
from gpulane_operator.k8s.status import StatusWriter
from gpulane_operator.metrics import OperatorMetrics
from gpulane_operator.outcomes import JobWrite
from gpulane_operator.selectors import SelectorCache
from gpulane_operator.settings import LIVE_S, OperatorSettings
from gpulane_operator.snapshot import SnapshotMemo
from gpulane_operator.statuses import compose, overlay
from gpulane_operator.stores import ApplyTasks, AssumeCache, Marks, NodeWakeups, QueueMemory

log = logging.getLogger(__name__)


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
    """One operator process: its settings and API writers, and the named stores of what it knows ahead of
    the API (stores.py). A cycle reads the stores once, before its first await."""

    settings: OperatorSettings
    api: KubeApi
    metrics: OperatorMetrics
    clock: Callable[[], float] = time.time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one cycle or loss sweep at a time
    runner: CycleRunner | None = None
    cache: AssumeCache = field(init=False)  # placements, Scheduled writes and deletions the watch lags behind
    background: ApplyTasks = field(default_factory=ApplyTasks)  # cycles' API actions in flight
    wakeups: NodeWakeups = field(default_factory=NodeWakeups)  # loss sweeps at NotReady nodes' deadlines
    queue: QueueMemory = field(default_factory=QueueMemory)  # first-seen times, preemptors waiting
    marks: Marks = field(default_factory=Marks)  # throttles of gauges and sweeps
    selectors: SelectorCache = field(default_factory=SelectorCache)  # DRA jobs' compiled device selectors
    snapshot_memo: SnapshotMemo = field(default_factory=SnapshotMemo)  # unchanged GPUs' lanes, cycle to cycle
    limit: asyncio.Semaphore = field(init=False)  # API calls in flight, over all cycles
    selector: dict[str, str | None] = field(init=False)  # scope.node_selector, parsed once
    status: StatusWriter = field(init=False)  # every job status write goes through it (coalesced)
    events: EventPoster = field(init=False)  # every Event goes through it (rate-limited)

    def __post_init__(self) -> None:
        self.cache = AssumeCache(self.clock)
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

    def write(self, rec: JobRecord, w: JobWrite) -> None:
        """Execute a decided job write (outcomes.py): queue its status, post its Event, observe a completion."""
        now = self.clock()
        if w.body is not None:
            self.status.put(rec.namespace, rec.name, w.body, window_s=w.window_s)
        if w.event is not None:
            ref = JobRef(rec.namespace, rec.name, rec.uid)
            self.events.post(ref, w.event.reason.value, w.event.message, now, warning=w.event.warning)
        if w.completed:
            self.metrics.job_completion.observe(max(0.0, now - rec.created_s))

    def spawn(self, jobs: set[JobId], work: Coroutine[Any, Any, None]) -> None:
        """Run a cycle's API actions in the background: the next cycle need not wait for them,
        because their lanes are already assumed and their jobs are skipped until they finish."""

        def finished(done: set[JobId]) -> None:
            self.cache.settled(done)
            self.poke()

        self.background.spawn(jobs, work, finished)

    async def drain(self) -> None:
        """Wait for every background action, then write queued statuses and Events now (tests, shutdown)."""
        await self.background.wait()
        await self.status.flush()
        await self.events.flush()

    def expire_assumptions(self, visible: set[JobId]) -> None:
        self.cache.expire(visible, self.background.inflight)

    def poke(self) -> None:
        if self.runner is not None:
            self.runner.poke()

    def wake_at(self, deadlines: Mapping[NodeName, float]) -> None:
        """Run a loss sweep when each NotReady node's grace ends (once per node and deadline)."""
        on_loss = self.settings.scheduling.on_node_loss
        self.wakeups.wake_at(deadlines, self.clock(), on_loss, lambda sweep: self.spawn(set(), sweep))
