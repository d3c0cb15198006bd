"""The fake backend's view of real processes: the report files of ``gpulane_core.fakegpu``, at host PIDs.

Each reading lists the report directory, parses every report and resolves the writer's host PID under an
injectable proc root (the agent reads the host's /proc, ``enforcement.proc_root``): the PID whose
``ns/pid`` inode is the report's ``pid_namespace`` and whose ``NSpid:`` ends with the report's ``pid``.
Resolutions are cached and re-checked on every reading, so a full /proc scan happens only for a report
seen for the first time. A report whose process no longer exists is ignored and its file removed; a
malformed one is ignored with one warning naming the file and the field (again only if it changes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from gpulane_core.fakegpu import ProcessReport, ReportError, innermost_pid, is_report_name, parse_report

log = logging.getLogger(__name__)

# (pid namespace inode, PID inside that namespace): how a report names its writer.
Identity = tuple[int, int]
_DIRECTORY = "(directory)"
_PROC = "(proc root)"


class ProcessFiles:
    """Reads the process reports in ``directory``; safe to call from several threads."""

    def __init__(self, directory: Path, proc_root: Path) -> None:
        self.directory = directory
        self._proc = proc_root
        self._lock = threading.Lock()
        self._host_pids: dict[Identity, int] = {}
        self._warned: dict[str, str] = {}  # what was last logged per file (or directory) with a problem
        self._problems: set[str] = set()  # the keys with a problem in the reading under way

    def ensure_directory(self) -> None:
        """Create the directory, writable by every user (sticky, like /tmp): pods run as any user."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o1777)

    def read(self) -> dict[str, dict[int, int]]:
        """GPU UUID -> host PID -> bytes, for every reporting process that is alive now."""
        with self._lock:
            self._problems = set()
            reports = dict(self._reports())
            unresolved = [r for r in reports.values() if not self._still_valid(r)]
            denied: set[int] = set()
            if unresolved:
                found, denied = self._scan()
                self._host_pids.update(found)
            out: dict[str, dict[int, int]] = {}
            for name, report in reports.items():
                pid = self._host_pids.get((report.pid_namespace, report.pid))
                if pid is None:
                    self._forget(name, report, denied)
                    continue
                for uuid, used in report.used_bytes.items():
                    out.setdefault(uuid, {})[pid] = used
            live = {(r.pid_namespace, r.pid) for r in reports.values()}
            self._host_pids = {k: v for k, v in self._host_pids.items() if k in live}
            self._warned = {k: v for k, v in self._warned.items() if k in self._problems}  # fixed ones warn anew
            return out

    # -- internals (caller holds the lock) ----------------------------------------------------------

    def _reports(self) -> Iterator[tuple[str, ProcessReport]]:
        try:
            names = sorted(e.name for e in os.scandir(self.directory) if is_report_name(e.name))
        except FileNotFoundError:
            return  # nothing reported yet (the agent creates it; containerd creates it for a mount)
        except OSError as exc:
            self._warn(_DIRECTORY, f"cannot list fake GPU process reports in {self.directory}: {exc}")
            return
        for name in names:
            try:
                report = parse_report((self.directory / name).read_text())
            except FileNotFoundError:
                continue  # its writer removed it just now
            except (OSError, UnicodeDecodeError) as exc:
                self._warn_file(name, f"(file): cannot read: {exc}")
                continue
            except ReportError as exc:
                self._warn_file(name, str(exc))
                continue
            yield name, report

    def _identity(self, pid: int) -> Identity | None:
        """Raises PermissionError when /proc/<pid>/ns/pid may not be inspected by this process."""
        base = self._proc / str(pid)
        try:
            inode = os.stat(base / "ns" / "pid").st_ino
            inner = innermost_pid((base / "status").read_text())
        except PermissionError:
            raise
        except OSError:
            return None  # exited meanwhile
        return None if inner is None else (inode, inner)

    def _still_valid(self, report: ProcessReport) -> bool:
        key = (report.pid_namespace, report.pid)
        pid = self._host_pids.get(key)
        if pid is None:
            return False
        with contextlib.suppress(PermissionError):
            if self._identity(pid) == key:
                return True
        del self._host_pids[key]
        return False

    def _scan(self) -> tuple[dict[Identity, int], set[int]]:
        """Every process's identity, and the in-namespace PIDs of those whose namespace may not be read.

        ``status`` stays readable when ``ns/pid`` is not (a process with capabilities this agent lacks),
        so a report is only in doubt when such a process has the report's in-namespace PID.
        """
        found: dict[Identity, int] = {}
        denied: set[int] = set()
        try:
            entries = [e.name for e in os.scandir(self._proc) if e.name.isdigit()]
        except OSError as exc:
            self._warn(_PROC, f"cannot resolve fake GPU process reports: cannot list {self._proc}: {exc}")
            return found, set()
        for name in entries:
            try:
                identity = self._identity(int(name))
            except PermissionError:
                with contextlib.suppress(OSError):
                    inner = innermost_pid((self._proc / name / "status").read_text())
                    if inner is not None:
                        denied.add(inner)
                continue
            if identity is not None:
                found[identity] = int(name)
        return found, denied

    def _forget(self, name: str, report: ProcessReport, denied: set[int]) -> None:
        if report.pid in denied:  # it may be a process we may not inspect: never delete a live one's report
            self._warn_file(
                name, f"pid_namespace: no process {report.pid} in PID namespace {report.pid_namespace} among "
                f"the processes this agent may inspect in {self._proc}, and one it may not has that PID (reading "
                "/proc/<pid>/ns/pid of another user's process, or of one with capabilities the agent lacks, needs "
                "CAP_SYS_PTRACE)")
            return
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn_file(name, f"(file): its process has exited but the file cannot be removed: {exc}")
            return
        log.info("removed %s: process %d of PID namespace %d has exited", self.directory / name,
                 report.pid, report.pid_namespace)

    def _warn_file(self, name: str, problem: str) -> None:
        self._warn(name, f"ignoring fake GPU process report {self.directory / name}: {problem}")

    def _warn(self, key: str, message: str) -> None:
        self._problems.add(key)
        if self._warned.get(key) != message:  # once per distinct problem, not once per reading
            self._warned[key] = message
            log.warning("%s", message)
