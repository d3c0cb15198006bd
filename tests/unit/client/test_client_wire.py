"""The client's copy of the wire format agrees with the coordinator's, and rejects malformed lines."""

from __future__ import annotations

import json

import pytest
from gpulane_agent.coordinator import protocol as server
from gpulane_client import wire
from gpulane_core.model import JobId, LaneId


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (server.Welcome(LaneId("l"), JobId("j"), "weight", 10.0, 3), wire.Welcome("l", "j", "weight", 10.0, 3)),
        (server.TurnGranted(4, 12.5, 0.25, True), wire.Granted(4, 12.5, 0.25, True)),
        (server.Prefetch(3), wire.PrefetchSignal(3)),
        (server.Offload(5), wire.OffloadSignal(5)),
        (server.TurnRevoked(2, 1, 3), wire.Revoked(2, 1, 3)),
        (server.Withdrawn(None), wire.Withdrawn(None)),
        (server.Withdrawn(9), wire.Withdrawn(9)),
        (server.Evicted("late"), wire.EvictedNotice("late")),
        (server.Error("job", "taken"), wire.ServerError("job", "taken")),
    ],
)
def test_client_decodes_every_server_message(message: server.ServerMessage, expected: wire.Incoming) -> None:
    assert wire.decode(server.encode(message)) == expected


def test_client_encoding_is_accepted_by_the_coordinator() -> None:
    line = wire.encode("turn_done", turn_id=3, compute_s=0.5, transfer_s=0.0, again=True)
    assert server.parse_client_message(line) == server.TurnDone(3, 0.5, 0.0, again=True)
    hello = wire.encode("hello", job="a", lane="l", working_set_bytes=5, iteration_estimate_s=0.1, priority=0, remaining_s=0.0)
    assert server.parse_client_message(hello) == server.Hello(JobId("a"), LaneId("l"), 5, 0.1)


def test_unknown_types_are_ignored_for_forward_compatibility() -> None:
    assert wire.decode(json.dumps({"v": 1, "type": "future_thing"}).encode()) is None


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (b"{", "<message>"),
        (b"[]", "<message>"),
        (b'{"v":9,"type":"prefetch","after_turn":1}', "v"),
        (b'{"v":1,"type":"prefetch","after_turn":"1"}', "after_turn"),
        (b'{"v":1,"type":"turn_granted","turn_id":1,"deadline_s":1,"wait_s":0,"prefetched":1}', "prefetched"),
        (b'{"v":1,"type":"turn_revoked","turn_id":true,"missed":1,"max_missed":3}', "turn_id"),
    ],
)
def test_malformed_server_lines_name_the_field(line: bytes, field: str) -> None:
    with pytest.raises(wire.LaneProtocolError) as info:
        wire.decode(line)
    assert info.value.field == field
