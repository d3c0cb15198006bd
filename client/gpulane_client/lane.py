"""The training loop's handle on its lane: take a turn per iteration, hear when to prefetch or offload.

A background reader thread receives the coordinator's messages, so prefetch and offload hooks fire
while the main thread waits for its turn or loads data. Without an agent (no environment, or the socket
is missing) a :class:`Lane` runs *standalone*: turns are granted at once, and it warns once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from gpulane_client import wire

log = logging.getLogger(__name__)
T = TypeVar("T")

ENV_SOCKET = "GPULANE_COORDINATOR_SOCKET"
ENV_LANE = "GPULANE_LANE_ID"
ENV_JOB = "GPULANE_JOB"
# After the coordinator went away (the agent pod restarting), a turn tries to rejoin at most this often.
RECONNECT_EVERY_S = 1.0


class StandaloneWarning(UserWarning):
    """The client runs without lane turns (no coordinator)."""


class LaneError(RuntimeError):
    """The coordinator refused something; ``field`` and ``reason`` come from its ``error`` message."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"coordinator error: {field}: {reason}")
        self.field = field
        self.reason = reason


class LaneEvictedError(RuntimeError):
    """The coordinator removed this job from its lane (e.g. it missed too many turn deadlines)."""


@dataclass(frozen=True, slots=True)
class LaneConfig:
    socket_path: str
    lane: str
    job: str
    working_set_bytes: int = 0
    iteration_estimate_s: float = 0.0
    priority: int = 0
    remaining_s: float = 0.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class PrefetchEvent:
    """This job is next after turn ``after_turn``: start bringing its working set onto the GPU."""

    after_turn: int


@dataclass(frozen=True, slots=True)
class EvictEvent:
    """The working set may leave the GPU: ``offload`` (another job holds the lane) or ``evicted``."""

    kind: Literal["offload", "evicted"]
    reason: str


@dataclass(frozen=True, slots=True)
class Turn:
    """One granted iteration turn (``standalone`` when there is no coordinator)."""

    id: int
    deadline_s: float
    wait_s: float
    prefetched: bool
    standalone: bool = False
    _revoked: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def revoked(self) -> bool:
        """The holder overran ``deadline_s`` and the coordinator gave the lane to the next job."""
        return self._revoked.is_set()


class Lane:
    """A connection to the node coordinator for one job in one lane (or a standalone stand-in)."""

    # Per-connection state, set by _reset_connection (at construction and before a rejoin).
    _sock: socket.socket | None
    _welcome: wire.Welcome | None
    _grant: wire.Granted | None
    _current: Turn | None
    _withdrawn: list[int | None]
    _discard: set[int]
    _error: wire.ServerError | None

    def __init__(self, config: LaneConfig | None, *, standalone_reason: str = "") -> None:
        self.config = config
        self._prefetch_hooks: list[Callable[[PrefetchEvent], None]] = []
        self._evict_hooks: list[Callable[[EvictEvent], None]] = []
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._reset_connection()
        self._evicted: str | None = None
        self._closing = False
        self._transfer_s = 0.0  # noted since the last turn_done
        self._blocking_s = 0.0  # the part of it that stalled the current turn
        self._warned = False
        self._reconnect_at = 0.0
        self.reconnects = 0
        if config is None:
            self._go_standalone(standalone_reason or "no coordinator configured")
        else:
            self._connect(config)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        working_set_bytes: int = 0,
        iteration_estimate_s: float = 0.0,
        priority: int = 0,
        remaining_s: float = 0.0,
    ) -> Lane:
        """Join the lane the device plugin assigned (``GPULANE_*`` variables); standalone without them."""
        env = os.environ if env is None else env
        missing = [name for name in (ENV_SOCKET, ENV_LANE, ENV_JOB) if not env.get(name)]
        if missing:
            return cls(None, standalone_reason=f"{', '.join(missing)} not set")
        path = env[ENV_SOCKET]
        if not os.path.exists(path):
            return cls(None, standalone_reason=f"coordinator socket {path} does not exist")
        config = LaneConfig(path, env[ENV_LANE], env[ENV_JOB], working_set_bytes, iteration_estimate_s, priority, remaining_s)
        try:
            return cls(config)
        except OSError as exc:
            return cls(None, standalone_reason=f"cannot connect to {path}: {exc}")

    def _go_standalone(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            message = f"gpulane: running without lane turns ({reason})"
            log.warning(message)
            warnings.warn(message, StandaloneWarning, stacklevel=3)

    def _connect(self, config: LaneConfig) -> None:
        try:
            self._open(config)
        except (OSError, LaneError):
            self.close()
            raise

    def _open(self, config: LaneConfig) -> None:
        """Connect and say hello; on failure the socket is closed and the error raised."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(config.connect_timeout_s)
        try:
            sock.connect(config.socket_path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read_loop, name="gpulane-lane-reader", daemon=True)
        self._reader.start()
        self._send(
            "hello", job=config.job, lane=config.lane, working_set_bytes=config.working_set_bytes,
            iteration_estimate_s=config.iteration_estimate_s, priority=config.priority, remaining_s=config.remaining_s,
        )
        with self._cond:
            ok = self._cond.wait_for(lambda: self._welcome or self._error or self._lost, config.connect_timeout_s)
            error = self._error
        if error is not None or not ok or self._lost:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            if error is not None:
                raise LaneError(error.field, error.reason)
            raise OSError(f"coordinator at {config.socket_path} did not answer hello")

    # ---- public API ---------------------------------------------------------------------------

    @property
    def standalone(self) -> bool:
        return self._sock is None or self._lost

    @property
    def welcome(self) -> wire.Welcome | None:
        return self._welcome

    def on_prefetch(self, hook: Callable[[PrefetchEvent], None]) -> Callable[[PrefetchEvent], None]:
        """Call ``hook`` (on the reader thread; keep it short) when this job is next. Usable as a decorator."""
        self._prefetch_hooks.append(hook)
        return hook

    def on_evict(self, hook: Callable[[EvictEvent], None]) -> Callable[[EvictEvent], None]:
        """Call ``hook`` (on the reader thread) when the working set may or must leave the GPU."""
        self._evict_hooks.append(hook)
        return hook

    def note_transfer(self, seconds: float, *, blocking: bool = False) -> None:
        """Add time spent bringing the working set onto the GPU (the weight policy's penalty).

        Reported as ``transfer_s`` with the next ``turn_done``, whenever it was noted. ``blocking``:
        the transfer ran inside the turn with the GPU otherwise idle, so it is not compute time.
        """
        with self._cond:
            self._transfer_s += max(0.0, seconds)
            if blocking and self._current is not None:
                self._blocking_s += max(0.0, seconds)

    @contextlib.contextmanager
    def turn(self, *, again: bool = False, timeout_s: float | None = None) -> Iterator[Turn]:
        """Hold the lane for one iteration; on exit report the compute time (and ask again if ``again``)."""
        if self._lost:
            self._try_rejoin()
        if self.standalone:
            if self._lost:
                self._go_standalone("lost the coordinator connection")
            yield Turn(0, math.inf, 0.0, False, standalone=True)
            return
        turn = self._acquire(timeout_s)
        started = time.perf_counter()
        completed = False
        try:
            yield turn
            completed = True
        finally:
            self._release(turn, time.perf_counter() - started, again=again and completed)

    def iterate(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield each item inside its own turn: ``for batch in lane.iterate(loader): step(batch)``.

        Each turn ends with ``again`` (the next request rides on ``turn_done``) except the last one of
        a sized iterable; when an unsized iterable runs out, the pending request is withdrawn.
        """
        remaining = len(iterable) if isinstance(iterable, Sized) else -1
        try:
            for item in iterable:
                remaining -= 1
                with self.turn(again=remaining != 0):
                    yield item
        finally:
            self.withdraw()

    def _reset_connection(self) -> None:
        """The per-connection state, as before the first hello (at construction and before a rejoin)."""
        self._sock = None
        self._welcome = None
        self._grant = None
        self._current = None
        self._requested = False
        self._withdrawn = []
        self._discard = set()
        self._error = None
        self._lost = False

    def _try_rejoin(self) -> bool:
        """Reconnect to a coordinator that came back on the same socket (a restarted agent rebuilds the
        lanes of running pods from the kubelet's PodResources, so this job's lane exists again)."""
        config = self.config
        now = time.monotonic()
        if config is None or self._closing or self._evicted is not None or now - self._reconnect_at < RECONNECT_EVERY_S:
            return False
        self._reconnect_at = now
        old = self._sock
        with self._cond:
            self._reset_connection()
        if old is not None:
            with contextlib.suppress(OSError):
                old.close()
        try:
            self._open(config)
        except (OSError, LaneError) as exc:
            with self._cond:
                self._lost = True
            log.debug("gpulane: rejoining %s failed: %s", config.socket_path, exc)
            return False
        self._warned = False
        self.reconnects += 1
        log.warning("gpulane: rejoined lane %s at %s; turns resume", config.lane, config.socket_path)
        return True

    def withdraw(self) -> None:
        """Cancel a pending request (after ``turn(again=True)`` or a ``TimeoutError``); a grant that
        crossed the withdrawal on the wire is given back, never used."""
        with self._cond:
            if not self._requested or self.standalone or self._evicted is not None:
                return
            self._send("withdraw")
            if self._cond.wait_for(lambda: self._withdrawn or self._lost, timeout=10) and self._withdrawn:
                given_back = self._withdrawn.pop(0)
                if self._grant is not None and self._grant.turn_id == given_back:
                    self._grant = None
                elif given_back is not None:
                    self._discard.add(given_back)  # its grant is still in flight: drop it on arrival
            self._requested = False

    def close(self) -> None:
        """Leave the lane and close the connection (idempotent)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._send("leave")
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)

    def __enter__(self) -> Lane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ----------------------------------------------------------------------------

    def _send(self, kind: str, **fields: object) -> None:
        assert self._sock is not None
        with self._send_lock:
            self._sock.sendall(wire.encode(kind, **fields))

    def _raise_if_failed(self) -> None:
        if self._evicted is not None:
            raise LaneEvictedError(self._evicted)
        if self._error is not None:
            error, self._error = self._error, None
            raise LaneError(error.field, error.reason)

    def _acquire(self, timeout_s: float | None) -> Turn:
        with self._cond:
            self._raise_if_failed()
            if not self._requested:
                self._requested = True
                try:
                    self._send("request_turn")
                except OSError:
                    self._lost = True
            ready = self._cond.wait_for(
                lambda: self._grant is not None or self._evicted or self._error or self._lost, timeout_s
            )
            self._raise_if_failed()
            if self._grant is None:
                if self._lost:  # the agent went away: keep training, without turns
                    self._go_standalone("lost the coordinator connection")
                    return Turn(0, math.inf, 0.0, False, standalone=True)
                assert not ready
                raise TimeoutError(f"no turn granted within {timeout_s} s")
            grant, self._grant = self._grant, None
            self._requested = False
            self._current = Turn(grant.turn_id, grant.deadline_s, grant.wait_s, grant.prefetched)
            self._blocking_s = 0.0
            return self._current

    def _release(self, turn: Turn, elapsed_s: float, *, again: bool) -> None:
        with self._cond:
            if turn.standalone or self._lost or self._evicted is not None:
                self._current = None
                return
            transfer, self._transfer_s = self._transfer_s, 0.0
            compute = max(0.0, elapsed_s - self._blocking_s)
            self._current = None
            try:
                self._send("turn_done", turn_id=turn.id, compute_s=compute, transfer_s=transfer, again=again)
            except OSError:
                self._lost = True
                return
            self._requested = again

    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        stream = sock.makefile("rb")
        try:
            for line in stream:
                try:
                    message = wire.decode(line)
                except wire.LaneProtocolError as exc:
                    log.error("gpulane: unreadable coordinator message (%s)", exc)
                    continue
                if message is not None:
                    self._dispatch(message)
        except (OSError, ValueError):
            pass  # closed under us
        finally:
            with self._cond:
                # Only the current connection's reader may declare it lost (not one replaced by a rejoin).
                if not self._closing and self._evicted is None and self._sock is sock:
                    self._lost = True
                    log.warning("gpulane: the coordinator connection closed")
                self._cond.notify_all()

    def _dispatch(self, message: wire.Incoming) -> None:
        if isinstance(message, wire.PrefetchSignal):
            self._fire(self._prefetch_hooks, PrefetchEvent(message.after_turn))
            return
        if isinstance(message, wire.OffloadSignal):
            self._fire(self._evict_hooks, EvictEvent("offload", f"turn {message.next_turn} went to another job"))
            return
        if isinstance(message, wire.EvictedNotice):
            with self._cond:
                self._evicted = message.reason
                self._cond.notify_all()
            self._fire(self._evict_hooks, EvictEvent("evicted", message.reason))
            return
        with self._cond:
            if isinstance(message, wire.Welcome):
                self._welcome = message
            elif isinstance(message, wire.Granted):
                if message.turn_id in self._discard:
                    self._discard.discard(message.turn_id)
                else:
                    self._grant = message
            elif isinstance(message, wire.Revoked):
                log.warning("gpulane: turn %d revoked (missed %d of %d deadlines)", message.turn_id, message.missed, message.max_missed)
                if self._current is not None and self._current.id == message.turn_id:
                    self._current._revoked.set()
            elif isinstance(message, wire.Withdrawn):
                self._withdrawn.append(message.turn_id)
            elif isinstance(message, wire.ServerError):
                log.error("gpulane: coordinator error: %s: %s", message.field, message.reason)
                self._error = message
            self._cond.notify_all()

    def _fire(self, hooks: list[Callable[[T], None]], event: T) -> None:
        for hook in hooks:
            try:
                hook(event)
            except Exception:  # a failing hook must not kill the reader thread
                log.exception("gpulane: %s hook failed", type(event).__name__)
