"""GPU health: a pure transition function and the HealthBoard that publishes changes.

XID critical errors make a GPU unhealthy until the agent restarts (NVIDIA's device plugin does the
same: a GPU that threw one is not trusted again without a reset). A lost GPU is unhealthy while its
readings fail and recovers when they succeed. ListAndWatch streams wait on the board for changes; the
exporter and inventory read immutable snapshots from other threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gpulane_agent.gpu.backend import (
    EventKind,
    GpuBackend,
    GpuError,
    GpuEvent,
    GpuLostError,
    event_makes_unhealthy,
)
from gpulane_agent.stats import AgentStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthState:
    """Per-GPU health plus the sticky set of GPUs that reported a critical XID."""

    lost: frozenset[int] = frozenset()
    xid: frozenset[int] = frozenset()

    def healthy(self, index: int) -> bool:
        return index not in self.lost and index not in self.xid

    def as_map(self, indices: Iterable[int]) -> dict[int, bool]:
        return {i: self.healthy(i) for i in indices}


def next_health(state: HealthState, events: Iterable[GpuEvent], lost_now: frozenset[int]) -> HealthState:
    """Pure: fold events and the GPUs whose probe reported them lost into the next state."""
    xid = set(state.xid)
    lost = set(lost_now)
    for event in events:
        if event.kind is EventKind.GPU_LOST:
            lost.add(event.index)
        elif event_makes_unhealthy(event):
            xid.add(event.index)
    return HealthState(lost=frozenset(lost), xid=frozenset(xid))


def probe_lost(backend: GpuBackend) -> frozenset[int]:
    """GPUs whose memory reading says they are gone (other errors are not health verdicts)."""
    lost = set()
    for gpu in backend.gpus():
        try:
            backend.memory(gpu.index)
        except GpuLostError:
            lost.add(gpu.index)
        except GpuError:  # a flaky reading is counted by the exporter, not a health verdict
            continue
    return frozenset(lost)


class HealthBoard:
    """The current HealthState with a version counter that async watchers can wait on."""

    def __init__(self) -> None:
        self._state = HealthState()
        self._version = 0
        self._cond: asyncio.Condition | None = None

    @property
    def state(self) -> HealthState:
        return self._state

    @property
    def version(self) -> int:
        return self._version

    def snapshot(self, indices: Iterable[int]) -> Mapping[int, bool]:
        return self._state.as_map(indices)

    async def update(self, state: HealthState) -> bool:
        """Publish ``state``; returns whether it changed (and wakes the watchers if so)."""
        if state == self._state:
            return False
        self._state = state
        self._version += 1
        cond = self._condition()
        async with cond:
            cond.notify_all()
        return True

    async def wait_newer(self, seen_version: int) -> int:
        """Return the current version once it is newer than ``seen_version``."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self._version > seen_version)
            return self._version

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # created lazily inside the running loop
            self._cond = asyncio.Condition()
        return self._cond


async def watch_health(backend: GpuBackend, board: HealthBoard, stats: AgentStats, interval_s: float) -> None:
    """Poll events and probes forever, publishing changes to the board."""
    while True:
        try:
            events = await asyncio.to_thread(backend.poll_events)
        except GpuError as exc:
            stats.backend_error(exc.operation)
            events = ()
        lost = await asyncio.to_thread(probe_lost, backend)
        if await board.update(next_health(board.state, events, lost)):
            log.warning("GPU health changed: %s", board.snapshot(g.index for g in backend.gpus()))
        await asyncio.sleep(interval_s)
