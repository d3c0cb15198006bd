"""The coordinator's unix-socket server: reads JSON lines, feeds the state machine, writes its effects.

Deliberately thin: every decision is in :mod:`gpulane_agent.coordinator.machine`. This module owns
the socket file, one reader task per connection, and one timer task that wakes at the earliest turn
deadline (re-armed only when that deadline changes) so a stuck holder loses its turn even when
nobody sends anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import Protocol

from gpulane_core.model import LaneId

from gpulane_agent.coordinator.collector import TurnCollector
from gpulane_agent.coordinator.lane import ConnId
from gpulane_agent.coordinator.machine import Close, Coordinator, Effect, LaneView, Send
from gpulane_agent.coordinator.metrics import LaneMetricsSnapshot
from gpulane_agent.coordinator.protocol import Error, ProtocolError, encode, parse_client_message
from gpulane_agent.coordinator.settings import CoordinatorSettings

log = logging.getLogger(__name__)

# A client that stops reading must not make the agent buffer without bound.
MAX_WRITE_BUFFER_BYTES = 1 << 20


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class CoordinatorServer:
    """One per node. ``start()`` binds ``settings.socket_path``; ``stop()`` closes everything."""

    def __init__(self, settings: CoordinatorSettings, clock: Clock | None = None) -> None:
        problems = settings.validate()
        if problems:
            raise ValueError("coordinator settings: " + "; ".join(problems))
        self._settings = settings
        self._clock: Clock = clock or MonotonicClock()
        self._machine = Coordinator(settings.turns)
        self._writers: dict[ConnId, asyncio.StreamWriter] = {}
        self._next_conn = 1
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None  # the deadline the timer is set for

    @property
    def socket_path(self) -> str:
        return self._settings.socket_path

    def collector(self) -> TurnCollector:
        """A prometheus Collector for the agent's registry (fresh families per scrape)."""
        return TurnCollector(self._machine.metrics, self._settings.hostname)

    def metrics(self) -> tuple[LaneMetricsSnapshot, ...]:
        """The per-lane counters now (the collector reads the same snapshot)."""
        return self._machine.metrics()

    def view(self, lane: str) -> LaneView | None:
        return self._machine.view(LaneId(lane), self._clock.now())

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("coordinator: already started")
        path = Path(self._settings.socket_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(path)
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(path), limit=self._settings.max_message_bytes
        )
        os.chmod(path, self._settings.socket_mode)
        self._rearm()
        log.info("coordinator listening on %s (policy %s)", path, self._settings.turns.policy.value)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers.values()):
            writer.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._armed_for = None, None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._settings.socket_path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ConnId(self._next_conn)
        self._next_conn += 1
        self._writers[conn] = writer
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # the line exceeded the stream limit
                    reason = f"longer than {self._settings.max_message_bytes} bytes"
                    self._apply([Send(conn, Error("<message>", reason)), Close(conn, reason)])
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    message = parse_client_message(line)
                except ProtocolError as exc:
                    self._apply([Send(conn, Error(exc.field, exc.reason))])
                    continue
                self._apply(self._machine.handle(conn, message, self._clock.now()))
        finally:
            self._apply(self._machine.disconnect(conn, self._clock.now()))
            self._writers.pop(conn, None)
            writer.close()

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            writer = self._writers.get(effect.conn)
            if writer is None or writer.is_closing():
                continue
            if isinstance(effect, Close):
                log.info("coordinator: closing connection %d: %s", effect.conn, effect.reason)
                writer.close()
                continue
            writer.write(encode(effect.message))
            if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES:
                log.warning("coordinator: connection %d stopped reading; closing it", effect.conn)
                writer.close()
        self._rearm()

    def _rearm(self) -> None:
        """Set the one timer for the earliest turn deadline (only when that deadline changed)."""
        if self._server is None:
            return
        deadline = self._machine.next_deadline()
        if deadline == self._armed_for and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self._clock.now())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._armed_for = None, None
        self._apply(self._machine.tick(self._clock.now()))


def _remove_stale_socket(path: Path) -> None:
    """Unlink a socket file nobody serves; refuse to replace a live coordinator or a regular file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"coordinator: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise RuntimeError(f"coordinator: another coordinator is serving {path}")
