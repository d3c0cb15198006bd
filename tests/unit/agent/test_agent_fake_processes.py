"""Processes that report their own GPU memory reach the fake backend at their host PID, like NVML's.

The proc root is a fixture tree: ``<root>/<pid>/ns/pid`` is a symlink to one file per PID namespace (so
``os.stat`` gives every member of a namespace the same inode, as nsfs does) and ``<root>/<pid>/status``
carries the ``NSpid:`` line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from gpulane_agent.gpu.factory import make_backend
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.fake_processes import ProcessFiles
from gpulane_agent.gpu.fake_spec import parse_spec
from gpulane_agent.settings import BackendConfig, BackendKind
from gpulane_core.fakegpu import ProcessReport, format_report
from gpulane_core.quantity import MIB

SPEC = {"version": "v1", "reserved_mib": 100, "gpus": [{"memory": "16Gi", "count": 2}]}


class Proc:
    """A fake /proc with PID namespaces."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "_ns").mkdir(parents=True)

    def namespace(self, name: str) -> int:
        path = self.root / "_ns" / name
        path.touch()
        return path.stat().st_ino

    def process(self, host_pid: int, namespace: str, *inner: int) -> None:
        d = self.root / str(host_pid)
        (d / "ns").mkdir(parents=True, exist_ok=True)
        link = d / "ns" / "pid"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(self.root / "_ns" / namespace)
        nspid = "\t".join(str(p) for p in (host_pid, *inner))
        (d / "status").write_text(f"Name:\tpython\nNSpid:\t{nspid}\nPPid:\t1\n")

    def exit(self, host_pid: int) -> None:
        d = self.root / str(host_pid)
        (d / "ns" / "pid").unlink()
        (d / "status").unlink()
        (d / "ns").rmdir()
        d.rmdir()


@pytest.fixture
def proc(tmp_path: Path) -> Proc:
    return Proc(tmp_path / "proc")


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    d = tmp_path / "reports"
    d.mkdir()
    return d


def _report(directory: Path, ns: int, pid: int, **used_mib: int) -> Path:
    report = ProcessReport(ns, pid, {uuid.replace("_", "-"): mib * MIB for uuid, mib in used_mib.items()})
    path = directory / report.file_name
    path.write_text(format_report(report))
    return path


def _backend(reports: Path, proc: Proc) -> tuple[FakeBackend, list[str]]:
    backend = FakeBackend(parse_spec(SPEC, "n"), ProcessFiles(reports, proc.root))
    uuids = [g.uuid for g in backend.gpus()]
    return backend, uuids


def test_a_container_process_is_reported_at_its_host_pid_like_a_registered_one(reports: Path, proc: Proc) -> None:
    pod_ns = proc.namespace("pod-a")
    proc.process(81234, "pod-a", 7)
    backend, (gpu0, gpu1) = _backend(reports, proc)
    _report(reports, pod_ns, 7, **{gpu0: 3072, gpu1: 512})
    backend.register_process(0, pid=41, used_mib=1000)
    assert [(p.pid, p.used_bytes) for p in backend.processes(0)] == [(41, 1000 * MIB), (81234, 3072 * MIB)]
    assert [(p.pid, p.used_bytes) for p in backend.processes(1)] == [(81234, 512 * MIB)]
    assert backend.memory(0).used_bytes == (100 + 1000 + 3072) * MIB
    assert backend.memory(1).free_bytes == (16384 - 100 - 512) * MIB


def test_the_same_inner_pid_in_two_namespaces_is_two_host_processes(reports: Path, proc: Proc) -> None:
    a, b = proc.namespace("pod-a"), proc.namespace("pod-b")
    proc.process(500, "pod-a", 1)
    proc.process(600, "pod-b", 1)
    proc.process(700, "host")  # a process of the host namespace itself (NSpid has one field)
    backend, (gpu0, _) = _backend(reports, proc)
    _report(reports, a, 1, **{gpu0: 10})
    _report(reports, b, 1, **{gpu0: 20})
    _report(reports, proc.namespace("host"), 700, **{gpu0: 30})
    assert [(p.pid, p.used_bytes // MIB) for p in backend.processes(0)] == [(500, 10), (600, 20), (700, 30)]


def test_a_report_follows_its_file_and_is_gone_with_it(reports: Path, proc: Proc) -> None:
    ns = proc.namespace("pod-a")
    proc.process(900, "pod-a", 3)
    backend, (gpu0, _) = _backend(reports, proc)
    path = _report(reports, ns, 3, **{gpu0: 1024})
    assert backend.memory(0).used_bytes == (100 + 1024) * MIB
    _report(reports, ns, 3, **{gpu0: 4096})  # the workload's turn: ephemeral memory on top
    assert backend.memory(0).used_bytes == (100 + 4096) * MIB
    path.unlink()  # the workload exits cleanly
    assert backend.processes(0) == ()
    assert backend.memory(0).used_bytes == 100 * MIB


def test_a_dead_processs_report_is_ignored_and_removed(reports: Path, proc: Proc) -> None:
    ns = proc.namespace("pod-a")
    proc.process(900, "pod-a", 3)
    backend, (gpu0, _) = _backend(reports, proc)
    live = _report(reports, ns, 3, **{gpu0: 64})
    dead = _report(reports, ns, 4, **{gpu0: 128})  # no such process: it was killed before cleaning up
    assert [p.pid for p in backend.processes(0)] == [900]
    assert not dead.exists()
    assert live.exists()
    proc.exit(900)  # the resolved process dies too (cached resolution is re-checked)
    assert backend.processes(0) == ()
    assert not live.exists()


def test_a_reused_host_pid_in_another_namespace_is_not_the_reporting_process(reports: Path, proc: Proc) -> None:
    ns = proc.namespace("pod-a")
    proc.namespace("pod-b")
    proc.process(900, "pod-a", 3)
    backend, (gpu0, _) = _backend(reports, proc)
    path = _report(reports, ns, 3, **{gpu0: 64})
    assert [p.pid for p in backend.processes(0)] == [900]
    proc.process(900, "pod-b", 3)  # 900 exited and the PID went to a process of another pod
    assert backend.processes(0) == ()
    assert not path.exists()


def test_a_malformed_report_is_ignored_with_one_warning_naming_file_and_field(
    reports: Path, proc: Proc, caplog: pytest.LogCaptureFixture
) -> None:
    ns = proc.namespace("pod-a")
    proc.process(900, "pod-a", 3)
    backend, (gpu0, _) = _backend(reports, proc)
    _report(reports, ns, 3, **{gpu0: 64})
    bad = reports / f"{ns}-9.json"
    bad.write_text(json.dumps({"version": "v1", "pid_namespace": ns, "pid": 9, "used_bytes": {gpu0: "lots"}}))
    (reports / f".{ns}-3.json.tmp").write_text("{half a wri")  # a writer's temporary file: not a report
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert [p.pid for p in backend.processes(0)] == [900]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"ignoring fake GPU process report {bad}: used_bytes.{gpu0}: must be a non-negative "
                        "integer, got 'lots'"]
    assert bad.exists()  # never deleted: a person may want to read it
    caplog.clear()
    bad.write_text("not json")  # a different problem is told again
    with caplog.at_level(logging.WARNING):
        backend.processes(0)
        backend.processes(0)
    assert [r.getMessage() for r in caplog.records] == [
        f"ignoring fake GPU process report {bad}: (file): not JSON: Expecting value: line 1 column 1 (char 0)"
    ]


def test_without_a_directory_there_are_no_reports(tmp_path: Path, proc: Proc) -> None:
    backend = FakeBackend(parse_spec(SPEC, "n"), ProcessFiles(tmp_path / "absent", proc.root))
    assert backend.processes(0) == ()
    assert backend.memory(0).used_bytes == 100 * MIB


def test_a_report_of_a_process_the_agent_may_not_inspect_is_kept_and_told(
    reports: Path, proc: Proc, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ns = proc.namespace("pod-a")
    proc.process(900, "pod-a", 3)
    backend, (gpu0, _) = _backend(reports, proc)
    path = _report(reports, ns, 3, **{gpu0: 64})
    real_stat = os.stat

    def stat(p: object, *args: object, **kw: object) -> os.stat_result:
        if str(p).endswith("/900/ns/pid"):
            raise PermissionError(13, "Permission denied")
        return real_stat(p, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    proc.process(901, "pod-a", 4)
    _report(reports, ns, 4, **{gpu0: 32})
    dead = _report(reports, ns, 5, **{gpu0: 64})  # no process has inner PID 5, inspectable or not: dead
    with caplog.at_level(logging.WARNING):
        assert [(p.pid, p.used_bytes) for p in backend.processes(0)] == [(901, 32 * MIB)]
    assert path.exists()  # 900 (inner PID 3, namespace unreadable) may be its writer: kept
    assert not dead.exists()
    assert "needs CAP_SYS_PTRACE" in caplog.text


def test_ensure_directory_makes_it_writable_for_every_user(tmp_path: Path) -> None:
    files = ProcessFiles(tmp_path / "run" / "fake-gpu" / "processes", Path("/proc"))
    files.ensure_directory()
    assert (files.directory.stat().st_mode & 0o7777) == 0o1777
    files.ensure_directory()  # idempotent


def test_the_factory_gives_the_fake_backend_its_report_directory(tmp_path: Path, proc: Proc) -> None:
    reports = tmp_path / "run" / "fake-gpu" / "processes"
    config = BackendConfig(kind=BackendKind.FAKE, fake_process_dir=str(reports))
    backend = make_backend(config, "n", proc_root=str(proc.root))
    assert reports.is_dir()  # created, for the pods Allocate mounts it into
    ns = proc.namespace("pod-a")
    proc.process(900, "pod-a", 3)
    uuid = backend.gpus()[1].uuid
    _report(reports, ns, 3, **{uuid: 256})
    assert [(p.pid, p.used_bytes) for p in backend.processes(1)] == [(900, 256 * MIB)]


def test_the_factory_keeps_going_when_the_directory_cannot_be_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = BackendConfig(kind=BackendKind.FAKE, fake_process_dir=str(blocker / "processes"))
    with caplog.at_level(logging.WARNING):
        backend = make_backend(config, "n", proc_root=str(tmp_path))
    assert backend.processes(0) == ()
    assert f"backend.fake_process_dir: cannot create {blocker / 'processes'}" in caplog.text
