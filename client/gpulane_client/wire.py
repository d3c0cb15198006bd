"""The client's side of the coordinator protocol (newline-delimited JSON, version 1).

The workload client may not import the node agent, so it carries its own small copy of the wire
format; ``docs/coordinator.md`` is the contract both sides follow, and the integration tests run
this code against the real coordinator.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1


class LaneProtocolError(ValueError):
    """A coordinator message the client cannot understand; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Welcome:
    lane: str
    job: str
    policy: str
    turn_timeout_s: float
    max_missed_deadlines: int


@dataclass(frozen=True, slots=True)
class Granted:
    turn_id: int
    deadline_s: float
    wait_s: float
    prefetched: bool


@dataclass(frozen=True, slots=True)
class PrefetchSignal:
    after_turn: int


@dataclass(frozen=True, slots=True)
class OffloadSignal:
    next_turn: int


@dataclass(frozen=True, slots=True)
class Revoked:
    turn_id: int
    missed: int
    max_missed: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    turn_id: int | None


@dataclass(frozen=True, slots=True)
class EvictedNotice:
    reason: str


@dataclass(frozen=True, slots=True)
class ServerError:
    field: str
    reason: str


Incoming = Welcome | Granted | PrefetchSignal | OffloadSignal | Revoked | Withdrawn | EvictedNotice | ServerError


def encode(kind: str, **fields: Any) -> bytes:
    return (json.dumps({"v": PROTOCOL_VERSION, "type": kind, **fields}, separators=(",", ":")) + "\n").encode()


def _get(body: dict[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(field)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):  # bool is an int
        raise LaneProtocolError(field, f"expected {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise LaneProtocolError(field, f"must be finite, got {value!r}")
    return value


def decode(line: bytes) -> Incoming | None:
    """Parse one coordinator line; None for a message type this client does not know (newer server)."""
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LaneProtocolError("<message>", f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise LaneProtocolError("<message>", "must be a JSON object")
    if body.get("v") != PROTOCOL_VERSION:
        raise LaneProtocolError("v", f"unsupported protocol version {body.get('v')!r}")
    num = (int, float)
    kind = body.get("type")
    if kind == "welcome":
        return Welcome(
            _get(body, "lane", str), _get(body, "job", str), _get(body, "policy", str),
            float(_get(body, "turn_timeout_s", num)), _get(body, "max_missed_deadlines", int),
        )
    if kind == "turn_granted":
        return Granted(
            _get(body, "turn_id", int), float(_get(body, "deadline_s", num)), float(_get(body, "wait_s", num)),
            _get(body, "prefetched", bool),
        )
    if kind == "prefetch":
        return PrefetchSignal(_get(body, "after_turn", int))
    if kind == "offload":
        return OffloadSignal(_get(body, "next_turn", int))
    if kind == "turn_revoked":
        return Revoked(_get(body, "turn_id", int), _get(body, "missed", int), _get(body, "max_missed", int))
    if kind == "withdrawn":
        turn = body.get("turn_id")
        return Withdrawn(None if turn is None else _get(body, "turn_id", int))
    if kind == "evicted":
        return EvictedNotice(_get(body, "reason", str))
    if kind == "error":
        return ServerError(_get(body, "field", str), _get(body, "reason", str))
    return None
