"""Wire protocol: every message round-trips, malformed input names the field and the reason."""

from __future__ import annotations

import json

import pytest
from gpulane_agent.coordinator.protocol import (
    PROTOCOL_VERSION,
    Error,
    Hello,
    Leave,
    ProtocolError,
    RequestTurn,
    TurnDone,
    TurnGranted,
    Withdraw,
    encode,
    parse_client_message,
)
from gpulane_core.model import JobId, LaneId


@pytest.mark.parametrize(
    "message",
    [
        Hello(JobId("ns/a"), LaneId("GPU-1/lane-0"), 1 << 30, 0.25, priority=-2, remaining_s=30.0),
        RequestTurn(),
        TurnDone(7, 0.5, 0.01, again=True),
        Withdraw(),
        Leave(),
    ],
)
def test_client_messages_round_trip(message: object) -> None:
    line = encode(message)  # type: ignore[arg-type]
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_client_message(line) == message


def test_encoded_messages_carry_version_and_type() -> None:
    body = json.loads(encode(TurnGranted(3, 10.0, 0.5, prefetched=True)))
    assert body == {"v": PROTOCOL_VERSION, "type": "turn_granted", "turn_id": 3, "deadline_s": 10.0, "wait_s": 0.5, "prefetched": True}
    assert json.loads(encode(Error("job", "bad")))["field"] == "job"


def test_hello_defaults_optional_fields() -> None:
    msg = parse_client_message('{"v":1,"type":"hello","job":"a","lane":"l"}')
    assert msg == Hello(JobId("a"), LaneId("l"))


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ("not json", "<message>", "not valid JSON"),
        ("[1, 2]", "<message>", "JSON object"),
        ('{"type":"leave"}', "v", "unsupported protocol version None"),
        ('{"v":2,"type":"leave"}', "v", "unsupported protocol version 2"),
        ('{"v":1,"type":"dance"}', "type", "unknown message type 'dance'"),
        ('{"v":1}', "type", "unknown message type None"),
        ('{"v":1,"type":"hello","lane":"l"}', "job", "non-empty string"),
        ('{"v":1,"type":"hello","job":"  ","lane":"l"}', "job", "non-empty string"),
        ('{"v":1,"type":"hello","job":"a"}', "lane", "non-empty string"),
        ('{"v":1,"type":"hello","job":"a","lane":"l","working_set_bytes":-1}', "working_set_bytes", "negative"),
        ('{"v":1,"type":"hello","job":"a","lane":"l","working_set_bytes":1.5}', "working_set_bytes", "integer"),
        ('{"v":1,"type":"hello","job":"a","lane":"l","iteration_estimate_s":"x"}', "iteration_estimate_s", "finite number"),
        ('{"v":1,"type":"hello","job":"a","lane":"l","priority":true}', "priority", "integer"),
        ('{"v":1,"type":"turn_done","compute_s":1}', "turn_id", "required"),
        ('{"v":1,"type":"turn_done","turn_id":1}', "compute_s", "required"),
        ('{"v":1,"type":"turn_done","turn_id":1,"compute_s":NaN}', "compute_s", "finite number"),
        ('{"v":1,"type":"turn_done","turn_id":1,"compute_s":1,"again":"yes"}', "again", "true or false"),
        ('{"v":1,"type":"turn_done","turn_id":1,"compute_s":1,"transfer_s":-0.1}', "transfer_s", "negative"),
    ],
)
def test_malformed_messages_name_the_field(line: str, field: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(line)
    assert info.value.field == field
    assert fragment in info.value.reason


def test_overlong_names_are_rejected() -> None:
    line = json.dumps({"v": 1, "type": "hello", "job": "j" * 300, "lane": "l"})
    with pytest.raises(ProtocolError, match="job: must be at most 253"):
        parse_client_message(line)
