"""Patch a GPUShareJob's status subresource (merge patch; the builders live in statuses.py).

:class:`StatusWriter` coalesces: a job's status changes within ``window_s`` go out as one PATCH with
their combined effect. The caller picks the window per change (cycle.py holds Scheduled until Running
comes), so a placement costs one status write.
Until it is written, :meth:`StatusWriter.pending` tells the operator what it has already decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gpulane_core.model import JobId

from gpulane_operator.k8s.api import ApiError, KubeApi

WINDOW_S = 1.0  # a job's status changes within this long after the first are written together
RETRY_S = 1.0  # after a failed write (it is merged with any newer change and tried again)
log = logging.getLogger(__name__)
# How two queued patches of one job become one (statuses.compose): the operator's rule, handed in, so
# this layer only queues and writes.
Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


async def patch(api: KubeApi, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
    """False when the job is gone (deleted meanwhile); other errors propagate."""
    try:
        await api.patch_job_status(namespace, name, body)
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True


class StatusWriter:
    """Per-job status patches, deferred ``window_s`` and merged (later changes win)."""

    def __init__(
        self, api: KubeApi, limit: asyncio.Semaphore, merge: Merge, window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._merge = merge
        self._api = api
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._queued: dict[JobId, tuple[float, dict[str, Any]]] = {}  # job -> (due, patch)
        self._writing: dict[JobId, dict[str, Any]] = {}  # written now, not confirmed yet
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def put(self, namespace: str, name: str, body: dict[str, Any], window_s: float | None = None) -> None:
        """Queue ``body``; it is written within ``window_s`` (default: the writer's), or sooner when an
        earlier change of the same job is due sooner."""
        job = JobId(f"{namespace}/{name}")  # crd.job_id's form
        due = self._clock() + (self._window_s if window_s is None else window_s)
        known = self._queued.get(job)
        if known is None:
            self._queued[job] = (due, body)
        else:
            self._queued[job] = (min(known[0], due), self._merge(known[1], body))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="gpulane status writer")
        self._wake.set()

    def pending(self, job: JobId) -> dict[str, Any] | None:
        """The status this process has decided for ``job`` and not yet seen written, or None."""
        queued = self._queued.get(job)
        writing = self._writing.get(job)
        if queued is None:
            return writing
        return queued[1] if writing is None else self._merge(writing, queued[1])

    def discard(self, job: JobId) -> None:
        """Forget queued changes of a job that is gone."""
        self._queued.pop(job, None)

    def jobs(self) -> set[JobId]:
        return set(self._queued) | set(self._writing)

    async def _run(self) -> None:
        # Never cancelled (close() lets it finish its batch): a change taken off the queue is written.
        while not self._closing:
            if not self._queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self._clock()
            due = [job for job, (at, _) in self._queued.items() if at <= now]
            if not due:
                self._wake.clear()
                soonest = min(at for at, _ in self._queued.values())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, soonest - now))
                continue
            await self._write([(job, self._queued.pop(job)[1]) for job in due])

    async def _write(self, batch: list[tuple[JobId, dict[str, Any]]]) -> None:
        for job, body in batch:
            self._writing[job] = body
        await asyncio.gather(*(self._write_one(job, body) for job, body in batch))

    async def _write_one(self, job: JobId, body: dict[str, Any]) -> None:
        namespace, _, name = job.partition("/")
        try:
            async with self._limit:
                await patch(self._api, namespace, name, body)
        except ApiError as exc:
            if exc.definitive and not exc.conflict:
                log.error("status of %s not written (%s); dropped", job, exc)
            else:
                log.warning("status of %s not written (%s); retried in %.0fs", job, exc, RETRY_S)
                newer = self._queued.get(job)
                merged = body if newer is None else self._merge(body, newer[1])
                self._queued[job] = (self._clock() + RETRY_S, merged)
        finally:
            self._writing.pop(job, None)

    async def flush(self) -> None:
        """Write every queued change now (shutdown and tests); failed ones stay queued."""
        batch = [(job, body) for job, (_, body) in self._queued.items()]
        self._queued.clear()
        await self._write(batch)

    async def close(self) -> None:
        """Let the batch in flight finish (a cancel lost it), then write everything queued once."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
