"""Kubernetes Events on GPUShareJobs: what ``kubectl describe gsj`` shows. Best effort by design:
a failed Event must never fail a scheduling decision, so errors are logged and dropped.

Events go through one :class:`EventPoster` per process: callers queue them and return at once, and one
background task posts them under a token bucket (client-go's event broadcaster defaults: 50/s, burst
100), so Events never compete with pod creates and bindings for the apiserver on a burst of jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpulane_operator.k8s.api import ApiError, KubeApi
from gpulane_operator.names import API_VERSION, KIND
from gpulane_operator.ratelimit import TokenBucket

COMPONENT = "gpulane-operator"
RATE_PER_S = 50.0
BURST = 100.0
BATCH = 10  # Events posted at once (concurrently) when tokens allow: a slow apiserver still sees ~50/s
MAX_QUEUED = 1000  # past this, new Events are dropped (and counted in the log): they are advice, not state
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobRef:
    namespace: str
    name: str
    uid: str


def event_body(ref: JobRef, reason: str, message: str, warning: bool, now_s: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(now_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def send(api: KubeApi, body: dict[str, Any]) -> None:
    try:
        await api.create_event(body["metadata"]["namespace"], body)
    except ApiError as exc:
        involved = body["involvedObject"]
        log.warning("event %s on %s/%s not posted: %s", body["reason"], involved["namespace"], involved["name"], exc)


class EventPoster:
    """Queues Events and posts them from one task, rate-limited; :meth:`flush` posts what is queued now."""

    def __init__(self, api: KubeApi, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._queue: deque[dict[str, Any]] = deque()
        self._bucket = TokenBucket.full(RATE_PER_S, BURST, clock())
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()  # set by close(): post what is queued without waiting for tokens
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def post(self, ref: JobRef, reason: str, message: str, now_s: float, *, warning: bool = False) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("%d Events dropped so far: more than %d are waiting to be posted", self.dropped, MAX_QUEUED)
            return
        self._queue.append(event_body(ref, reason, message, warning, now_s))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="gpulane event poster")

    async def _run(self) -> None:
        # Never cancelled (close() lets it finish): an Event taken off the queue is always sent.
        while not (self._closing.is_set() and not self._queue):
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[dict[str, Any]] = []
                while self._queue and len(batch) < BATCH:
                    self._bucket, wait_s = self._bucket.take(self._clock())
                    if wait_s > 0 and not self._closing.is_set():
                        # The token is reserved: post what is ready, then wait for it (or for close()).
                        await self._send_all(batch)
                        batch = []
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._closing.wait(), wait_s)
                        if not self._queue:
                            break  # flushed meanwhile
                    batch.append(self._queue.popleft())
                await self._send_all(batch)

    async def _send_all(self, batch: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(send(self._api, body) for body in batch))

    async def flush(self) -> None:
        """Post everything queued now, without waiting for tokens (shutdown and tests)."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            await self._send_all(batch)

    async def close(self) -> None:
        """Post everything still queued, then stop; the task is let finish, not cancelled, because a
        cancel in the middle of a batch lost the Events it had taken off the queue."""
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    @property
    def queued(self) -> int:
        return len(self._queue)
