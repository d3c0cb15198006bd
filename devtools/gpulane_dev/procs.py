"""Start, watch and stop the long-running processes of a local control plane, leaking none.

Each process runs in its own session (so its whole process group can be signalled) with its output
in a log file. Processes owned by a test session also get PR_SET_PDEATHSIG, so a killed pytest takes
them along; detached ones (the people's dev cluster) are recorded by pid and stopped only after
checking that the pid still runs the same executable.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1
_TAIL_CHARS = 3000


class StartupFailed(RuntimeError):
    """A process exited or never became ready; the message holds its command line and log tail."""


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What to run: a name for messages, the argv, the log file and extra environment."""

    name: str
    argv: tuple[str, ...]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A started process as written to a state file: enough to check and stop it later."""

    name: str
    pid: int
    executable: str
    log: str


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL us when our parent dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Supervised:
    """One running process and its log; `stop()` signals the whole process group."""

    def __init__(self, spec: ProcessSpec, popen: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def name(self) -> str:
        return self.spec.name

    def alive(self) -> bool:
        return self._popen.poll() is None

    def returncode(self) -> int | None:
        return self._popen.poll()

    def record(self) -> ProcessRecord:
        return ProcessRecord(self.name, self.pid, self.spec.argv[0], str(self.spec.log))

    def log_tail(self) -> str:
        return log_tail(self.spec.log)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL; always reaps the leader."""
        if self._popen.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self._popen.wait(timeout=timeout)
        # Children that outlived their leader are still in the group: make sure they go too.
        _signal_group(self.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start(spec: ProcessSpec, *, die_with_parent: bool) -> Supervised:
    """Start `spec` in a new session, output appended to its log file."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(spec.env)
    with spec.log.open("ab") as log:
        log.write(f"=== {time.strftime('%H:%M:%S')} starting: {' '.join(spec.argv)}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        except OSError as exc:
            raise StartupFailed(f"{spec.name}: cannot execute {spec.argv[0]}: {exc}") from exc
    return Supervised(spec, popen)


def log_tail(path: Path | str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"(log {path} unreadable: {exc.strerror})"
    return data[-_TAIL_CHARS:].decode(errors="replace")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    watch: Sequence[Supervised] = (),
) -> float:
    """Poll `ready` until true; fail early when a watched process exits. Returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        for proc in watch:
            code = proc.returncode()
            if code is not None:
                raise StartupFailed(
                    f"{proc.name} exited with status {code} while waiting for {what}\n"
                    f"command: {' '.join(proc.spec.argv)}\n--- {proc.spec.log} (tail) ---\n{proc.log_tail()}"
                )
        if ready():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {p.spec.log} (tail) ---\n{p.log_tail()}" for p in watch)
            raise StartupFailed(f"timed out after {timeout:.0f}s waiting for {what}{tails}")
        time.sleep(_POLL_S)


def record_alive(record: ProcessRecord, exec_grace_s: float = 1.0) -> bool:
    """True when `record.pid` still runs `record.executable` (not a recycled pid).

    Popen returns once exec has closed the child's close-on-exec pipe, but the kernel sets up the new
    argument pages a moment later; until then /proc/<pid>/cmdline is empty. An empty cmdline of a live,
    non-zombie process therefore means "still exec-ing": wait for it (bounded) instead of calling the
    process foreign.
    """
    deadline = time.monotonic() + exec_grace_s
    while True:
        try:
            cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
        except OSError:
            return False
        if cmdline or _is_zombie(record.pid) or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_S / 10)
    argv0 = cmdline.split(b"\0", 1)[0].decode(errors="replace")
    return argv0 == record.executable


def stop_record(record: ProcessRecord, timeout: float = 15.0) -> bool:
    """Stop a detached process group by its record; False when it was no longer running."""
    if not record_alive(record):
        return False
    _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while record_alive(record) and not _is_zombie(record.pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    _signal_group(record.pid, signal.SIGKILL)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # Field 3, after the parenthesised command name, is the state; Z means exited but not yet reaped.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
