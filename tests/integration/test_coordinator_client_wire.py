"""The client library against a scripted coordinator on a real unix socket: exactly what it sends,
and how it handles crossed grants, revocations, errors, unknown messages and failing hooks."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpulane_client import Lane, LaneConfig, LaneError, PrefetchEvent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


class ScriptedCoordinator:
    """Accepts one client; records every line it sends; replies with what the test queues."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.received: list[dict[str, Any]] = []
        self.conn: socket.socket | None = None
        self._consumed = 0
        self._arrived = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.conn, _ = self.listener.accept()
        for line in self.conn.makefile("rb"):
            with self._arrived:
                self.received.append(json.loads(line))
                self._arrived.notify_all()

    def expect(self, kind: str) -> dict[str, Any]:
        """Wait for the next unconsumed message and check its type."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) > self._consumed, timeout=10), f"no {kind}"
            message = self.received[self._consumed]
            self._consumed += 1
        assert message["type"] == kind, message
        assert message["v"] == 1
        return message

    def send(self, kind: str, **fields: Any) -> None:
        assert self.conn is not None
        self.conn.sendall((json.dumps({"v": 1, "type": kind, **fields}) + "\n").encode())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def coordinator() -> Iterator[tuple[ScriptedCoordinator, Path]]:
    with tempfile.TemporaryDirectory(prefix="gl-", dir="/tmp") as d:
        path = Path(d) / "c.sock"
        server = ScriptedCoordinator(path)
        yield server, path
        server.close()


def _connect(server: ScriptedCoordinator, path: Path, **kw: Any) -> Lane:
    result: dict[str, Lane] = {}
    thread = threading.Thread(target=lambda: result.setdefault("lane", Lane(LaneConfig(str(path), "g/l", "ns/j", **kw))))
    thread.start()
    hello = server.expect("hello")
    assert hello == {
        "v": 1, "type": "hello", "job": "ns/j", "lane": "g/l", "working_set_bytes": kw.get("working_set_bytes", 0),
        "iteration_estimate_s": kw.get("iteration_estimate_s", 0.0), "priority": 0, "remaining_s": 0.0,
    }
    server.send("welcome", lane="g/l", job="ns/j", policy="fair", turn_timeout_s=5.0, max_missed_deadlines=3)
    thread.join(10)
    return result["lane"]


def test_turn_sends_request_then_done_with_compute_and_transfer(coordinator: tuple[ScriptedCoordinator, Path]) -> None:
    server, path = coordinator
    lane = _connect(server, path, working_set_bytes=1000, iteration_estimate_s=0.5)
    assert lane.welcome is not None and lane.welcome.policy == "fair"
    server.send("turn_granted", turn_id=3, deadline_s=5.0, wait_s=0.0, prefetched=False)  # arrives before asking
    lane.note_transfer(0.25)  # noted between turns: transfer, not stall
    started = time.perf_counter()
    with lane.turn(again=True) as turn:
        lane.note_transfer(0.05, blocking=True)
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    assert turn.id == 3
    server.expect("request_turn")
    done = server.expect("turn_done")
    assert done["turn_id"] == 3 and done["again"] is True
    assert done["transfer_s"] == pytest.approx(0.30)
    assert 0.0 < done["compute_s"] <= elapsed - 0.05  # the blocking transfer is not compute
    lane.close()
    server.expect("leave")


def test_crossed_grant_after_withdraw_is_given_back_not_used(coordinator: tuple[ScriptedCoordinator, Path]) -> None:
    server, path = coordinator
    lane = _connect(server, path)
    server.send("turn_granted", turn_id=1, deadline_s=5.0, wait_s=0.0, prefetched=False)
    with lane.turn(again=True):
        pass
    server.expect("request_turn")
    server.expect("turn_done")

    def coordinator_side() -> None:
        server.expect("withdraw")
        # The coordinator had already granted turn 2 when the withdraw arrived.
        server.send("turn_granted", turn_id=2, deadline_s=5.0, wait_s=0.0, prefetched=False)
        server.send("withdrawn", turn_id=2)

    helper = threading.Thread(target=coordinator_side)
    helper.start()
    lane.withdraw()
    helper.join(10)
    # The next turn must ask again and use the new grant, not the given-back turn 2.
    server.send("turn_granted", turn_id=5, deadline_s=5.0, wait_s=0.0, prefetched=True)
    with lane.turn() as turn:
        pass
    assert turn.id == 5 and turn.prefetched
    server.expect("request_turn")
    assert server.expect("turn_done")["turn_id"] == 5


def test_revocation_marks_the_turn_and_errors_surface_on_the_next_turn(coordinator: tuple[ScriptedCoordinator, Path]) -> None:
    server, path = coordinator
    lane = _connect(server, path)
    server.send("turn_granted", turn_id=1, deadline_s=0.1, wait_s=0.0, prefetched=False)
    with lane.turn() as turn:
        server.expect("request_turn")
        server.send("turn_revoked", turn_id=1, missed=1, max_missed=3)
        deadline = time.monotonic() + 10
        while not turn.revoked and time.monotonic() < deadline:
            time.sleep(0.01)
    assert turn.revoked
    server.expect("turn_done")
    server.send("error", field="turn_id", reason="turn 1 is not this job's turn")
    server.send("something_new", x=1)  # unknown types are ignored
    time.sleep(0.1)
    with pytest.raises(LaneError) as info, lane.turn():
        pass
    assert info.value.field == "turn_id"


def test_a_failing_hook_does_not_stop_the_reader(coordinator: tuple[ScriptedCoordinator, Path]) -> None:
    server, path = coordinator
    lane = _connect(server, path)
    seen: list[PrefetchEvent] = []

    def broken(event: PrefetchEvent) -> None:
        raise RuntimeError("hook bug")

    lane.on_prefetch(broken)
    lane.on_prefetch(seen.append)
    server.send("prefetch", after_turn=7)
    server.send("turn_granted", turn_id=8, deadline_s=5.0, wait_s=0.1, prefetched=True)
    with lane.turn() as turn:
        pass
    assert seen == [PrefetchEvent(7)] and turn.id == 8
