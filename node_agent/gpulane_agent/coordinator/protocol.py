"""The coordinator's wire protocol: newline-delimited JSON messages, parsed into frozen values.

The protocol is the only contract between the node agent and ``gpulane_client`` (the client may not
import the agent), so every message is defined here once, versioned (``"v": 1``), and documented in
``docs/coordinator.md``. Parsing is strict: a malformed message raises :class:`ProtocolError` naming
the offending field and the reason, which the server sends back as an ``error`` message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from gpulane_core.model import JobId, LaneId

PROTOCOL_VERSION = 1
MAX_NAME_CHARS = 253


class ProtocolError(ValueError):
    """A message that cannot be accepted; ``field`` names the culprit (``"<message>"`` for framing)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ---- client -> coordinator -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Join a lane. Must be the first message on a connection."""

    TYPE: ClassVar[str] = "hello"
    job: JobId
    lane: LaneId
    working_set_bytes: int = 0  # what must be on the GPU before the job's turn
    iteration_estimate_s: float = 0.0  # the client's guess of one iteration's compute time
    priority: int = 0  # higher goes first within the lane's policy
    remaining_s: float = 0.0  # estimated remaining run time (srtf); 0 = unknown


@dataclass(frozen=True, slots=True)
class RequestTurn:
    TYPE: ClassVar[str] = "request_turn"


@dataclass(frozen=True, slots=True)
class TurnDone:
    """The holder gives the turn back; ``again`` also queues its next request atomically."""

    TYPE: ClassVar[str] = "turn_done"
    turn_id: int
    compute_s: float
    transfer_s: float = 0.0
    again: bool = False


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Cancel a pending request (or give back a turn just granted) without doing an iteration."""

    TYPE: ClassVar[str] = "withdraw"


@dataclass(frozen=True, slots=True)
class Leave:
    TYPE: ClassVar[str] = "leave"


ClientMessage = Hello | RequestTurn | TurnDone | Withdraw | Leave


# ---- coordinator -> client -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    lane: LaneId
    job: JobId
    policy: str
    turn_timeout_s: float
    max_missed_deadlines: int


@dataclass(frozen=True, slots=True)
class TurnGranted:
    """The job holds the lane until it sends ``turn_done`` or ``deadline_s`` seconds pass."""

    TYPE: ClassVar[str] = "turn_granted"
    turn_id: int
    deadline_s: float
    wait_s: float
    prefetched: bool  # whether a prefetch signal preceded this turn


@dataclass(frozen=True, slots=True)
class Prefetch:
    """Bring the working set onto the GPU now: the job is next after turn ``after_turn``."""

    TYPE: ClassVar[str] = "prefetch"
    after_turn: int


@dataclass(frozen=True, slots=True)
class Offload:
    """Another job holds the lane now; the working set may go back to host memory."""

    TYPE: ClassVar[str] = "offload"
    next_turn: int


@dataclass(frozen=True, slots=True)
class TurnRevoked:
    """The holder missed its deadline; the turn went to the next job."""

    TYPE: ClassVar[str] = "turn_revoked"
    turn_id: int
    missed: int
    max_missed: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """Answer to ``withdraw``: ``turn_id`` is the turn it gave back, None when it only cancelled a request."""

    TYPE: ClassVar[str] = "withdrawn"
    turn_id: int | None


@dataclass(frozen=True, slots=True)
class Evicted:
    """The job was removed from the lane; the coordinator closes the connection after this."""

    TYPE: ClassVar[str] = "evicted"
    reason: str


@dataclass(frozen=True, slots=True)
class Error:
    TYPE: ClassVar[str] = "error"
    field: str
    reason: str


ServerMessage = Welcome | TurnGranted | Prefetch | Offload | TurnRevoked | Withdrawn | Evicted | Error


def encode(message: ClientMessage | ServerMessage) -> bytes:
    """One message as a JSON line (``v`` and ``type`` first)."""
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": message.TYPE}
    body.update(asdict(message))
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


# ---- parsing ----------------------------------------------------------------------------------


def _name(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(field, f"must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_CHARS:
        raise ProtocolError(field, f"must be at most {MAX_NAME_CHARS} characters, got {len(value)}")
    return value


def _number(body: Mapping[str, Any], field: str, default: float | None = None) -> float:
    value = body.get(field, default)
    if value is None:
        raise ProtocolError(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError(field, f"must be a finite number, got {value!r}")
    if value < 0:
        raise ProtocolError(field, f"must not be negative, got {value!r}")
    return float(value)


def _integer(body: Mapping[str, Any], field: str, default: int | None = None, *, signed: bool = False) -> int:
    value = body.get(field, default)
    if value is None:
        raise ProtocolError(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(field, f"must be an integer, got {value!r}")
    if not signed and value < 0:
        raise ProtocolError(field, f"must not be negative, got {value!r}")
    return value


def _flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise ProtocolError(field, f"must be true or false, got {value!r}")
    return value


def parse_client_message(line: bytes | str) -> ClientMessage:
    """Parse one line from a client; raises :class:`ProtocolError` naming the bad field."""
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("<message>", f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("<message>", f"must be a JSON object, got {type(body).__name__}")
    version = body.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("v", f"unsupported protocol version {version!r} (this coordinator speaks {PROTOCOL_VERSION})")
    kind = body.get("type")
    if kind == Hello.TYPE:
        return Hello(
            job=JobId(_name(body, "job")),
            lane=LaneId(_name(body, "lane")),
            working_set_bytes=_integer(body, "working_set_bytes", 0),
            iteration_estimate_s=_number(body, "iteration_estimate_s", 0.0),
            priority=_integer(body, "priority", 0, signed=True),
            remaining_s=_number(body, "remaining_s", 0.0),
        )
    if kind == RequestTurn.TYPE:
        return RequestTurn()
    if kind == TurnDone.TYPE:
        return TurnDone(
            turn_id=_integer(body, "turn_id"),
            compute_s=_number(body, "compute_s"),
            transfer_s=_number(body, "transfer_s", 0.0),
            again=_flag(body, "again"),
        )
    if kind == Withdraw.TYPE:
        return Withdraw()
    if kind == Leave.TYPE:
        return Leave()
    known = ", ".join(t.TYPE for t in (Hello, RequestTurn, TurnDone, Withdraw, Leave))
    raise ProtocolError("type", f"unknown message type {kind!r} (known: {known})")
