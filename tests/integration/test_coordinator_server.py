"""The socket server over a real unix socket: framing, errors, socket-file handling, metrics, and the
client library's hooks, withdraw and eviction paths against it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from time import sleep as time_sleep
from typing import Any

import pytest
from gpulane_agent.coordinator import CoordinatorServer, CoordinatorSettings, TurnSettings
from gpulane_client import EvictEvent, Lane, LaneConfig, LaneError, LaneEvictedError, PrefetchEvent
from gpulane_core.ordering import OrderingPolicy
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def sock_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gl-", dir="/tmp") as d:
        yield Path(d) / "run" / "c.sock"


@pytest.fixture
async def server(sock_path: Path) -> AsyncIterator[CoordinatorServer]:
    settings = CoordinatorSettings(
        socket_path=str(sock_path), hostname="n1",
        turns=TurnSettings(policy=OrderingPolicy.FAIR, turn_timeout_s=0.3, timeout_factor=0, max_missed_deadlines=1),
    )
    srv = CoordinatorServer(settings)
    await srv.start()
    yield srv
    await srv.stop()


async def _exchange(path: Path, *lines: bytes, expect: int) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    for line in lines:
        writer.write(line)
    await writer.drain()
    out = [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(expect)]
    writer.close()
    return out


async def test_socket_is_created_with_mode_and_removed_on_stop(sock_path: Path, server: CoordinatorServer) -> None:
    mode = sock_path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o666
    await server.stop()
    assert not sock_path.exists()


async def test_malformed_lines_get_field_named_errors_and_the_connection_survives(sock_path: Path, server: CoordinatorServer) -> None:
    out = await _exchange(
        sock_path,
        b"garbage\n",
        b'{"v":1,"type":"hello","job":"","lane":"l"}\n',
        b'{"v":1,"type":"request_turn"}\n',
        b'{"v":1,"type":"hello","job":"a","lane":"l"}\n',
        b'{"v":1,"type":"request_turn"}\n',
        expect=5,
    )
    assert [(m["type"], m.get("field")) for m in out] == [
        ("error", "<message>"), ("error", "job"), ("error", "type"), ("welcome", None), ("turn_granted", None),
    ]
    assert "non-empty string" in out[1]["reason"]


async def test_overlong_line_is_refused_and_closed(sock_path: Path, server: CoordinatorServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(sock_path))
    writer.write(b'{"v":1,"type":"hello","job":"' + b"x" * 70000 + b'"}\n')
    await writer.drain()
    reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
    assert reply["field"] == "<message>" and "longer than 65536 bytes" in reply["reason"]
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_stale_socket_is_replaced_but_a_live_one_is_not(sock_path: Path, server: CoordinatorServer) -> None:
    second = CoordinatorServer(CoordinatorSettings(socket_path=str(sock_path)))
    with pytest.raises(RuntimeError, match="another coordinator is serving"):
        await second.start()
    await server.stop()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))  # a socket file nobody listens on, as after a crash
    stale.close()
    await second.start()
    await second.stop()


def test_settings_are_validated_at_construction() -> None:
    with pytest.raises(ValueError, match="socket_path: must be an absolute path"):
        CoordinatorServer(CoordinatorSettings(socket_path="rel.sock"))
    with pytest.raises(ValueError, match=r"turns\.max_missed_deadlines"):
        CoordinatorServer(CoordinatorSettings(turns=TurnSettings(max_missed_deadlines=0)))


async def test_hung_client_is_revoked_by_the_timer_and_evicted(sock_path: Path, server: CoordinatorServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(sock_path))
    writer.write(b'{"v":1,"type":"hello","job":"a","lane":"l"}\n{"v":1,"type":"request_turn"}\n')
    await writer.drain()
    types = [json.loads(await asyncio.wait_for(reader.readline(), 5))["type"] for _ in range(4)]
    # Nobody sends anything after the grant: the timer alone revokes the turn, then evicts (limit 1).
    assert types == ["welcome", "turn_granted", "turn_revoked", "evicted"]
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    registry = CollectorRegistry()
    registry.register(server.collector())
    assert registry.get_sample_value("gpulane_lane_turn_timeouts_total", {"lane": "l", "Hostname": "n1"}) == 1


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


async def _until(done: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``done`` on the event loop (the server runs on it too) until true; fail naming ``what``."""
    for _ in range(int(timeout_s / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"waited {timeout_s} s for {what}")


def _client_thread(fn: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


async def test_client_hooks_withdraw_and_eviction_against_the_server(sock_path: Path) -> None:
    """Two client Lanes (threads in this process, blocking API) against the asyncio server.

    The jobs must share the lane for a prefetch to exist: the coordinator only tells a job to prefetch
    while another job holds the lane and it waits. So the order is forced, not left to thread timing
    (a's six turns take about 2 ms; b's thread starting 5 ms late once meant they never met): b holds
    the lane first, a asks while b holds (so a is told to prefetch), and the injected clock only passes
    b's deadline after that, however slowly the threads run.
    """
    clock = FakeClock()
    settings = CoordinatorSettings(
        socket_path=str(sock_path), hostname="n1",
        turns=TurnSettings(policy=OrderingPolicy.FAIR, turn_timeout_s=0.3, timeout_factor=0, max_missed_deadlines=1),
    )
    server = CoordinatorServer(settings, clock=clock)
    await server.start()
    events: dict[str, list[Any]] = {"a": [], "b": []}
    result: dict[str, Any] = {}
    b_holds, a_prefetching, b_evicted = threading.Event(), threading.Event(), threading.Event()

    def run_a() -> None:
        if not b_holds.wait(10):
            result["a"] = "b never held the lane within 10 s"
            return
        lane = Lane(LaneConfig(str(sock_path), "l", "a"))

        @lane.on_prefetch
        def prefetch(event: PrefetchEvent) -> None:
            events["a"].append(event)
            a_prefetching.set()

        lane.on_evict(events["a"].append)
        done = 0
        for _ in lane.iterate(iter(range(6))):  # unsized: the last request is withdrawn
            done += 1
        result["a"] = done
        lane.close()

    def run_b() -> None:
        lane = Lane(LaneConfig(str(sock_path), "l", "b"))
        lane.on_prefetch(events["b"].append)

        @lane.on_evict
        def evict(event: EvictEvent) -> None:
            events["b"].append(event)
            if event.kind == "evicted":
                b_evicted.set()

        try:
            with lane.turn():
                b_holds.set()
                # Overrun the deadline: hold the turn until the coordinator evicts this job (limit 1 miss).
                if not b_evicted.wait(10):
                    result["b"] = "not evicted within 10 s of holding past the deadline"
                    return
            with lane.turn():
                pass
        except LaneEvictedError as exc:
            result["b"] = str(exc)

    try:
        threads = [_client_thread(run_a), _client_thread(run_b)]
        await _until(lambda: a_prefetching.is_set() or not threads[0].is_alive(), "a told to prefetch while b holds")
        assert a_prefetching.is_set(), f"a was not told to prefetch while b held the lane: {result}"
        clock.t += 1.0  # b's deadline passes on the coordinator's clock: revoked, then evicted
        while any(t.is_alive() for t in threads):
            await asyncio.sleep(0.02)
        assert result["a"] == 6
        assert "missed 1 consecutive turn deadlines" in result["b"]
        assert any(isinstance(e, EvictEvent) and e.kind == "evicted" for e in events["b"])
        assert any(isinstance(e, PrefetchEvent) for e in events["a"])
        # a's thread ends once it has sent 'leave'; the server may read it a loop iteration later.
        await _until(lambda: server.view("l") is None, "the server to see both jobs leave lane l")
    finally:
        await server.stop()


async def test_duplicate_job_is_refused_with_a_lane_error(sock_path: Path, server: CoordinatorServer) -> None:
    def run() -> None:
        first = Lane(LaneConfig(str(sock_path), "l", "dup"))
        try:
            Lane(LaneConfig(str(sock_path), "l", "dup"))
        except LaneError as exc:
            outcome.append(exc)
        first.close()

    outcome: list[LaneError] = []
    thread = _client_thread(run)
    while thread.is_alive():
        await asyncio.sleep(0.02)
    assert outcome and outcome[0].field == "job"


def test_from_env_connects_to_a_live_coordinator(sock_path: Path) -> None:
    loop = asyncio.new_event_loop()
    srv = CoordinatorServer(CoordinatorSettings(socket_path=str(sock_path)))
    loop.run_until_complete(srv.start())
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        env = {**os.environ, "GPULANE_COORDINATOR_SOCKET": str(sock_path), "GPULANE_LANE_ID": "g/l", "GPULANE_JOB": "ns/j"}
        with Lane.from_env(env, working_set_bytes=10) as lane:
            assert not lane.standalone
            assert lane.welcome is not None and lane.welcome.policy == "weight"
            with lane.turn() as turn:
                assert turn.id == 1 and not turn.standalone
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


async def test_client_continues_standalone_when_the_agent_goes_away(sock_path: Path, server: CoordinatorServer) -> None:
    state: dict[str, Any] = {}
    connected = threading.Event()
    stopped = threading.Event()

    def run() -> None:
        import warnings

        lane = Lane(LaneConfig(str(sock_path), "l", "a"))
        with lane.turn():
            pass
        connected.set()
        stopped.wait(10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = sum(1 for _ in lane.iterate(range(3)))
        state["done"], state["standalone"] = done, lane.standalone
        state["warnings"] = [str(w.message) for w in caught]

    thread = _client_thread(run)
    while not connected.is_set():
        await asyncio.sleep(0.02)
    await server.stop()
    await asyncio.sleep(0.2)  # let the client's reader see the connection close
    stopped.set()
    while thread.is_alive():
        await asyncio.sleep(0.02)
    assert state["done"] == 3 and state["standalone"]
    assert state["warnings"] == ["gpulane: running without lane turns (lost the coordinator connection)"]


async def test_client_rejoins_a_coordinator_that_comes_back_on_the_same_socket(sock_path: Path, server: CoordinatorServer) -> None:
    """The agent pod restarting: its new coordinator serves the same socket, and the job's turns resume there."""
    state: dict[str, Any] = {}
    connected, stopped, restarted = threading.Event(), threading.Event(), threading.Event()

    def run() -> None:
        lane = Lane(LaneConfig(str(sock_path), "l", "a", connect_timeout_s=2.0))
        with lane.turn():
            pass
        connected.set()
        stopped.wait(10)
        with lane.turn() as outage:  # the coordinator is gone: standalone for now
            state["outage"] = outage.standalone
        restarted.wait(10)
        ids = []
        for _ in range(40):  # a rejoin is tried at most once a second, at a turn
            with lane.turn() as turn:
                ids.append(turn.id)
            if turn.id > 0:
                break
            time_sleep(0.1)
        state["ids"], state["reconnects"], state["standalone"] = ids, lane.reconnects, lane.standalone
        lane.close()

    thread = _client_thread(run)
    while not connected.is_set():
        await asyncio.sleep(0.02)
    await server.stop()
    await asyncio.sleep(0.2)
    stopped.set()
    await asyncio.sleep(0.2)
    again = CoordinatorServer(CoordinatorSettings(socket_path=str(sock_path), hostname="n1"))
    await again.start()
    restarted.set()
    try:
        while thread.is_alive():
            await asyncio.sleep(0.02)
    finally:
        await again.stop()
    assert state["outage"] is True
    assert state["ids"][-1] > 0, state  # a real turn from the new coordinator
    assert state["reconnects"] == 1 and state["standalone"] is False


async def test_decisions_use_the_injected_clock(sock_path: Path) -> None:
    clock = FakeClock()
    settings = CoordinatorSettings(socket_path=str(sock_path), turns=TurnSettings(turn_timeout_s=0.2, timeout_factor=0))
    srv = CoordinatorServer(settings, clock=clock)
    await srv.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock_path))
        writer.write(b'{"v":1,"type":"hello","job":"a","lane":"l"}\n{"v":1,"type":"request_turn"}\n')
        await writer.drain()
        for _ in range(2):
            await asyncio.wait_for(reader.readline(), 5)
        await asyncio.sleep(0.5)  # real time passes, the injected clock does not: no revocation
        view = srv.view("l")
        assert view is not None and view.holder == "a"
        clock.t += 1.0  # now the deadline has passed on the coordinator's clock
        revoked = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert revoked["type"] == "turn_revoked"
        writer.close()
    finally:
        await srv.stop()
