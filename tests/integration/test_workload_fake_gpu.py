"""``gpulane-workload`` as real processes against a real coordinator, seen by a FakeBackend at their real PIDs.

Two workloads share one lane on a real unix socket. The first is frozen (SIGSTOP) while it holds its
turn, so what the backend reads is not a race: the holder's persistent + ephemeral memory, and the
waiting job's persistent memory only (here with ``--over-use``: its limit + the excess). Then both run
to the end, each turn granted by the coordinator, and their reports are gone with them.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpulane_agent.coordinator import CoordinatorServer, CoordinatorSettings, TurnSettings
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.fake_processes import ProcessFiles
from gpulane_core.quantity import MIB

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WORKLOAD = str(Path(sys.executable).parent / "gpulane-workload")
WAIT_S = 30.0
RESERVED_MIB = 256  # the default spec's driver reserve


class Coordinator:
    """A CoordinatorServer on its own event loop thread, as the agent runs it."""

    def __init__(self, socket_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="coordinator", daemon=True)
        self.thread.start()
        # a turn never times out here: the test freezes a holder on purpose
        settings = CoordinatorSettings(str(socket_path), hostname="node-a", turns=TurnSettings(turn_timeout_s=600))
        self.server = CoordinatorServer(settings)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(WAIT_S)

    def turns(self, lane: str) -> int:
        async def read() -> int:
            return sum(m.turns for m in self.server.metrics() if m.lane == lane)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(WAIT_S)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(WAIT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_S)
        self.loop.close()


class Workload:
    """One ``gpulane-workload`` process; its stdout lines arrive on a queue."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([WORKLOAD, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.all_lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.all_lines.append(line.strip())
            self.lines.put(line.strip())

    def next_line(self) -> str:
        try:
            return self.lines.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"no turn line from pid {self.proc.pid} within {WAIT_S} s") from None

    def finish(self) -> tuple[int, str]:
        try:
            code = self.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"workload {self.proc.pid} did not finish within {WAIT_S} s") from None
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gl-wl-", dir="/tmp"))  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_for(what: str, check: object) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")


def test_two_workloads_take_turns_and_the_fake_backend_sees_their_memory_at_their_pids(workdir: Path) -> None:
    reports = workdir / "processes"
    files = ProcessFiles(reports, Path("/proc"))
    files.ensure_directory()
    backend = FakeBackend.default("node-a", files)
    gpu = backend.gpus()[0].uuid
    lane = f"{gpu}/lane-1"
    coordinator = Coordinator(workdir / "c.sock")
    base = {k: v for k, v in os.environ.items() if not k.startswith("GPULANE_")}
    env = {**base, "GPULANE_COORDINATOR_SOCKET": str(workdir / "c.sock"), "GPULANE_LANE_ID": lane,
           "CUDA_VISIBLE_DEVICES": gpu, "GPULANE_FAKE_GPU_DIR": str(reports), "GPULANE_PERSISTENT_MIB": "1024",
           "GPULANE_EPHEMERAL_MIB": "2048", "GPULANE_MEMORY_LIMIT_MIB": "3072"}
    a = b = None
    try:
        a = Workload({**env, "GPULANE_JOB": "team/a"}, "--iterations", "3", "--iteration-seconds", "0.2")
        first = a.next_line()
        a.proc.send_signal(signal.SIGSTOP)  # frozen in its first turn, holding persistent + ephemeral
        assert first.startswith(f"gpulane-workload: job=team/a iteration=1/3 lane={lane} turn=")
        assert first.endswith(f"held_bytes={3072 * MIB}")
        assert int(first.split("turn=")[1].split()[0]) > 0  # granted by the coordinator, not standalone

        b = Workload({**env, "GPULANE_JOB": "team/b"}, "--iterations", "2", "--iteration-seconds", "0.2",
                     "--over-use", "512")
        _wait_for("the second workload's report", lambda: len(list(reports.glob("*.json"))) == 2)
        # a holds the lane, so b waits: it holds only what it keeps between turns (its limit + 512 MiB)
        assert [(p.pid, p.used_bytes) for p in backend.processes(0)] == sorted(
            [(a.proc.pid, 3072 * MIB), (b.proc.pid, (3072 + 512) * MIB)])
        assert backend.memory(0).used_bytes == (RESERVED_MIB + 3072 + 3584) * MIB
        assert b.lines.empty()  # and has not had a turn

        a.proc.send_signal(signal.SIGCONT)
        code_a, err_a = a.finish()
        code_b, err_b = b.finish()
        assert (code_a, code_b) == (0, 0), (err_a, err_b)
        assert len(a.all_lines) == 3 and len(b.all_lines) == 2
        turn_ids = [int(line.split("turn=")[1].split()[0]) for line in a.all_lines + b.all_lines]
        assert len(set(turn_ids)) == 5 and min(turn_ids) > 0  # five distinct coordinator turns
        assert coordinator.turns(lane) == 5
        assert list(reports.iterdir()) == []  # each removed its report on exit
        assert backend.processes(0) == ()
        assert backend.memory(0).used_bytes == RESERVED_MIB * MIB
    finally:
        for w in (a, b):
            if w is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
                w.proc.kill()
                w.proc.wait()
        coordinator.stop()


def test_a_terminated_workload_removes_its_report_and_a_killed_ones_report_is_cleaned_up(workdir: Path) -> None:
    reports = workdir / "processes"
    files = ProcessFiles(reports, Path("/proc"))
    files.ensure_directory()
    backend = FakeBackend.default("node-a", files)
    gpu = backend.gpus()[1].uuid
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GPULANE_")},
           "CUDA_VISIBLE_DEVICES": gpu, "GPULANE_FAKE_GPU_DIR": str(reports), "GPULANE_PERSISTENT_MIB": "100",
           "GPULANE_EPHEMERAL_MIB": "200"}  # no coordinator: standalone turns
    for sig, code in ((signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL)):
        w = Workload(env, "--iterations", "1000", "--iteration-seconds", "0.05")
        w.next_line()
        assert backend.processes(1)[0].pid == w.proc.pid
        w.proc.send_signal(sig)
        assert w.finish()[0] == code
        assert backend.processes(1) == ()  # SIGTERM: removed by the workload; SIGKILL: by the backend
        assert list(reports.glob("*.json")) == []
