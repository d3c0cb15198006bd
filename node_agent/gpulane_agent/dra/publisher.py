"""Keeps the node's ResourceSlice equal to ``slices.slice_spec`` of the current inventory and health.

Read, compare, then create or replace with the read ``resourceVersion``: the pool generation must grow
with every change (allocators trust only a pool's newest generation), and a server-side apply could not
bump it without reading first anyway. A replace that loses a race (409) is simply retried on the next
pass. Passes run on every health change, on every ``nudge`` (the agent nudges when the kubelet registers
the plugin: a kubelet that restarted has deleted the node's slices) and every ``resync_s`` (somebody may
edit or delete ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpulane_agent.dra import slices
from gpulane_agent.dra.api import DraKube
from gpulane_agent.gpu.backend import GpuBackend
from gpulane_agent.health import HealthBoard
from gpulane_agent.kube.api import KubeError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublishResult:
    action: str  # "created", "replaced" or "unchanged"
    generation: int


class SlicePublisher:
    def __init__(
        self,
        node_name: str,
        backend: GpuBackend,
        board: HealthBoard,
        kube: Callable[[], DraKube | None],
        unit_mib: int,
        resync_s: float = 60.0,
    ) -> None:
        self._node = node_name
        self._backend = backend
        self._board = board
        self._kube = kube
        self._unit_mib = unit_mib
        self._resync_s = resync_s
        self.name = slices.slice_name(node_name)
        self._nudged = asyncio.Event()

    def desired(self) -> dict[str, Any]:
        gpus = self._backend.gpus()
        return slices.slice_spec(self._node, gpus, self._board.snapshot(g.index for g in gpus), self._unit_mib)

    async def publish(self) -> PublishResult:
        kube = self._require_kube()
        spec = self.desired()
        current = await kube.get_slice(self.name)
        if current is None:
            body = slices.body(self._node, await kube.node_uid(self._node), spec, generation=1)
            await kube.create_slice(body)
            log.info("created ResourceSlice %s (%d devices)", self.name, len(spec["devices"]))
            return PublishResult("created", 1)
        old_spec = current.get("spec") or {}
        generation = int((old_spec.get("pool") or {}).get("generation", 0))
        if slices.comparable(old_spec) == slices.comparable(spec):
            return PublishResult("unchanged", generation)
        meta = current.get("metadata") or {}
        body = slices.body(self._node, await kube.node_uid(self._node), spec, generation + 1)
        body["metadata"]["resourceVersion"] = meta.get("resourceVersion")
        await kube.replace_slice(self.name, body)
        log.info("replaced ResourceSlice %s: generation %d, %d devices", self.name, generation + 1, len(spec["devices"]))
        return PublishResult("replaced", generation + 1)

    async def delete(self) -> None:
        await self._require_kube().delete_slice(self.name)
        log.info("deleted ResourceSlice %s", self.name)

    def nudge(self) -> None:
        """Publish again soon (without waiting for the resync tick)."""
        self._nudged.set()

    async def run(self) -> None:
        """Publish now, then on each health change, nudge or resync tick; API errors are logged and retried."""
        seen = self._board.version
        last_error = ""
        while True:
            self._nudged.clear()
            try:
                await self.publish()
                last_error = ""
            except KubeError as exc:
                if str(exc) != last_error:  # retried every tick; said once per distinct failure
                    log.warning("publishing ResourceSlice %s failed: %s (retrying)", self.name, exc)
                    last_error = str(exc)
            seen = await self._wait(seen)

    async def _wait(self, seen: int) -> int:
        """Until the board moves past ``seen``, a nudge or the resync timeout; the board version seen then."""
        health = asyncio.ensure_future(self._board.wait_newer(seen))
        nudge = asyncio.ensure_future(self._nudged.wait())
        try:
            await asyncio.wait((health, nudge), timeout=self._resync_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (health, nudge):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(health, nudge, return_exceptions=True)
        return self._board.version

    def _require_kube(self) -> DraKube:
        kube = self._kube()
        if kube is None:
            raise KubeError("the agent has not connected to the API server yet")
        return kube
