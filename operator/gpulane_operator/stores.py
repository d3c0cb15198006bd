"""The operator's in-memory stores: what this process knows before the API or the watch shows it.

Each store holds one kind of knowledge and its expiry rule; :class:`~gpulane_operator.runtime.Runtime`
composes them. Losing any of them (a crash) is safe: pods carry their assignments, and a pod in flight
is either visible after a restart or was never created.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpulane_core.model import JobId, NodeName
from gpulane_core.podcontract import Assignment

from gpulane_operator.crd import Reason
from gpulane_operator.inventory import NodeInventory

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


class AssumeCache:
    """Like kube-scheduler's assume cache: placements whose pods the watch has not shown yet (so no cycle
    books their lanes twice in that gap), the jobs whose Scheduled status this process has written, and
    the pods it is deleting and why (so the pod-deleted event leaves those jobs to the deleter)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.assumed: dict[JobId, Assumed] = {}
        self.reported: dict[JobId, float] = {}
        self.deleting: dict[JobId, tuple[Reason, float]] = {}

    def assume(self, job: JobId, assignment: Assignment) -> None:
        self.assumed[job] = Assumed(assignment, self._clock())

    def drop(self, job: JobId) -> None:
        """The job's pod is counted from the watch now, or will never exist."""
        self.assumed.pop(job, None)

    def assignments(self) -> dict[JobId, Assignment]:
        return {job: a.assignment for job, a in self.assumed.items()}

    def report(self, job: JobId) -> None:
        self.reported[job] = self._clock()

    def mark_deleting(self, job: JobId, reason: Reason) -> None:
        self.deleting[job] = (reason, self._clock())

    def deletion_seen(self, job: JobId) -> bool:
        """The watch shows the pod gone: True when this process deleted it (and has handled the job)."""
        return self.deleting.pop(job, None) is not None

    def settled(self, jobs: set[JobId]) -> None:
        """The API actions of these jobs have finished: their assumptions' TTL starts now."""
        now = self._clock()
        for job in jobs & self.assumed.keys():
            self.assumed[job] = Assumed(self.assumed[job].assignment, now)

    def expire(self, visible: set[JobId], inflight: set[JobId]) -> None:
        """Drop assumptions the watch has confirmed, and stale ones whose pod never appeared."""
        now = self._clock()
        for job in list(self.assumed):
            expired = now - self.assumed[job].since_s > ASSUMED_TTL_S and job not in inflight
            if job in visible or expired:
                del self.assumed[job]
        for job in list(self.reported):
            if now - self.reported[job] > ASSUMED_TTL_S:
                del self.reported[job]
        for job in list(self.deleting):
            if job not in visible and now - self.deleting[job][1] > ASSUMED_TTL_S:
                del self.deleting[job]


class ApplyTasks:
    """A cycle's API actions, run in the background, and the jobs they touch (skipped until they end)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.inflight: set[JobId] = set()

    def spawn(
        self, jobs: set[JobId], work: Coroutine[Any, Any, None], finished: Callable[[set[JobId]], None]
    ) -> None:
        self.inflight |= jobs

        def done(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            self.inflight -= jobs
            if not task.cancelled() and task.exception() is not None:
                log.error("applying a cycle failed", exc_info=task.exception())
            finished(jobs)

        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(done)

    async def wait(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


class NodeWakeups:
    """Loss sweeps timed for when NotReady nodes' grace ends: such a node sends no more watch events."""

    def __init__(self) -> None:
        self.sweep: Callable[[], Coroutine[Any, Any, None]] | None = None  # set once the indexes exist
        self.timers: dict[NodeName, tuple[float, asyncio.TimerHandle]] = {}

    def wake_at(self, deadlines: Mapping[NodeName, float], now: float, on_node_loss: str,
                run: Callable[[Coroutine[Any, Any, None]], None]) -> None:  # fmt: skip
        """A sweep when each node's grace ends (once per node and deadline), handed to ``run``."""
        sweep = self.sweep
        if sweep is None:
            return
        loop = asyncio.get_running_loop()
        for node, deadline in deadlines.items():
            known = self.timers.get(node)
            if known is not None and known[0] == deadline:
                continue
            if known is not None:
                known[1].cancel()
            delay = max(0.0, deadline - now) + 0.2  # just past the deadline
            log.info("node %s is NotReady; its jobs are handled as lost in %.0fs (on_node_loss=%s) unless it returns",
                     node, delay, on_node_loss)  # fmt: skip
            self.timers[node] = (deadline, loop.call_later(delay, lambda: run(sweep())))

    def cancel(self) -> None:
        for _, handle in self.timers.values():
            handle.cancel()
        self.timers.clear()


@dataclass
class QueueMemory:
    """What the queue keeps between cycles: when each job's first event came, and the preemptors that
    wait for their victims to go."""

    seen: dict[JobId, float] = field(default_factory=dict)
    waiting: dict[JobId, frozenset[JobId]] = field(default_factory=dict)

    def forget(self, job: JobId) -> None:
        self.seen.pop(job, None)
        self.waiting.pop(job, None)


@dataclass
class Marks:
    """When throttled work last ran, and what a heartbeat is compared with."""

    started_at: float = field(default_factory=time.monotonic)  # when this process's runtime was made
    swept_at_start: bool = False  # the first cycle looked for pods deleted while no operator watched
    counts_at: float = 0.0  # when a job event last refreshed the jobs-by-phase and queue gauges
    state_observed_at: float = 0.0  # when a cycle last refreshed the per-GPU lane gauges (and those counts)
    # Each node's inventory as its last event left it (None: none), to skip sweeps on node heartbeats.
    last_inventory: dict[str, NodeInventory | None] = field(default_factory=dict)
