"""Process supervision with real processes: groups are stopped whole, failures carry the log, pid reuse
is never mistaken for our process, and children die with their parent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from gpulane_dev import procs

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    # A shell that starts a grandchild: stopping the leader's group must end both.
    pid_file = tmp_path / "child.pid"
    spec = procs.ProcessSpec("tree", ("/bin/sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"), tmp_path / "t.log")
    proc = procs.start(spec, die_with_parent=True)
    procs.wait_until(lambda: (tmp_path / "child.pid").exists(), what="child pid", timeout=10, watch=[proc])
    time.sleep(0.1)
    child = int((tmp_path / "child.pid").read_text())
    assert alive(child)
    proc.stop(timeout=5)
    assert not proc.alive()
    assert wait_dead(child)


def test_a_process_that_exits_early_fails_with_its_log(tmp_path: Path) -> None:
    spec = procs.ProcessSpec("bad", ("/bin/sh", "-c", "echo boom: no such flag >&2; exit 3"), tmp_path / "bad.log")
    proc = procs.start(spec, die_with_parent=True)
    with pytest.raises(procs.StartupFailed) as info:
        procs.wait_until(lambda: False, what="readiness", timeout=30, watch=[proc])
    message = str(info.value)
    assert message.startswith("bad exited with status 3 while waiting for readiness")
    assert "boom: no such flag" in message


def test_unknown_executable_is_a_startup_failure(tmp_path: Path) -> None:
    with pytest.raises(procs.StartupFailed, match="x: cannot execute /nonexistent/binary"):
        procs.start(procs.ProcessSpec("x", ("/nonexistent/binary",), tmp_path / "x.log"), die_with_parent=True)


def test_records_stop_detached_processes_and_ignore_recycled_pids(tmp_path: Path) -> None:
    proc = procs.start(procs.ProcessSpec("sleeper", ("/bin/sleep", "300"), tmp_path / "s.log"), die_with_parent=False)
    try:
        record = proc.record()
        impostor = procs.ProcessRecord("sleeper", record.pid, "/usr/bin/something-else", record.log)
        assert procs.record_alive(record)
        assert not procs.record_alive(impostor)
        assert not procs.stop_record(impostor)  # a pid running another executable is left alone
        assert proc.alive()
        assert procs.stop_record(record)
        assert wait_dead(record.pid) or proc.returncode() is not None
        assert not procs.stop_record(record)
    finally:
        proc.stop(timeout=5)  # a detached process must not outlive a failed test


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    # A parent Python process starts a child with die_with_parent=True, then is SIGKILLed.
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from gpulane_dev import procs
        p = procs.start(procs.ProcessSpec("c", ("/bin/sleep", "300"), Path({str(tmp_path / 'c.log')!r})),
                        die_with_parent=True)
        Path({str(tmp_path / 'pid')!r}).write_text(str(p.pid))
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        procs.wait_until(lambda: (tmp_path / "pid").exists(), what="child pid", timeout=30)
        time.sleep(0.1)
        child = int((tmp_path / "pid").read_text())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    assert wait_dead(child)


def test_free_port_is_bindable() -> None:
    import socket

    port = procs.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
