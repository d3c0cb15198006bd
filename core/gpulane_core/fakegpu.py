"""The fake GPU's process reports: how a workload tells the agent's fake backend what GPU memory it holds.

With the fake backend there is no driver to ask, so a process that "uses" GPU memory writes one small
JSON file into a directory shared with the node agent (``GPULANE_FAKE_GPU_DIR``, which ``Allocate``
mounts into the container)::

    {"version": "v1", "pid_namespace": 4026532201, "pid": 7, "used_bytes": {"GPU-1f0e...": 3221225472}}

A process in a container knows only its own PID namespace, while NVML, and so the agent, speaks host
PIDs. The report therefore names the writer by ``pid_namespace`` (the inode of ``/proc/self/ns/pid``)
and ``pid`` (its PID inside that namespace); the agent finds the host PID whose ``/proc/<pid>/ns/pid``
has that inode and whose ``NSpid:`` line in ``/proc/<pid>/status`` ends with that PID.

Writers replace the file atomically (write ``.<name>.tmp``, then rename onto ``<name>``) and remove it
when they exit; readers ignore names that start with a dot or do not end in ``.json``. Both sides live
here so that they cannot drift apart (docs/contracts.md lists the names).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_DIR = "GPULANE_FAKE_GPU_DIR"
DEFAULT_DIR = "/run/gpulane/fake-gpu/processes"
VERSION = "v1"
SUFFIX = ".json"
_FIELDS = ("version", "pid_namespace", "pid", "used_bytes")


class ReportError(ValueError):
    """A process report cannot be read; the message starts with the field at fault."""


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """One process's GPU memory, by GPU UUID, as the process itself reports it."""

    pid_namespace: int
    pid: int
    used_bytes: Mapping[str, int]

    @property
    def file_name(self) -> str:
        return f"{self.pid_namespace}-{self.pid}{SUFFIX}"


def _positive(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportError(f"{key}: must be an integer, got {value!r}")
    if value < 1:
        raise ReportError(f"{key}: must be positive, got {value}")
    return value


def parse_report(text: str) -> ProcessReport:
    """The report in ``text``; ReportError naming the field when it is malformed."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ReportError(f"(file): not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ReportError(f"(file): must hold a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ReportError(f"{unknown[0]}: unknown field (known: {', '.join(_FIELDS)})")
    if raw.get("version") != VERSION:
        raise ReportError(f"version: must be {VERSION!r}, got {raw.get('version')!r}")
    used = raw.get("used_bytes")
    if not isinstance(used, dict):
        raise ReportError(f"used_bytes: must map GPU UUIDs to bytes, got {used!r}")
    for uuid, amount in used.items():
        if not uuid.strip():
            raise ReportError("used_bytes: a GPU UUID is empty")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ReportError(f"used_bytes.{uuid}: must be a non-negative integer, got {amount!r}")
    return ProcessReport(_positive(raw, "pid_namespace"), _positive(raw, "pid"), dict(used))


def format_report(report: ProcessReport) -> str:
    """The file content for ``report`` (the inverse of :func:`parse_report`)."""
    return json.dumps(
        {"version": VERSION, "pid_namespace": report.pid_namespace, "pid": report.pid,
         "used_bytes": dict(report.used_bytes)},
        sort_keys=True,
    ) + "\n"


def is_report_name(name: str) -> bool:
    """Whether a directory entry is a report (not a writer's temporary file)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def innermost_pid(status_text: str) -> int | None:
    """The PID a process has in its own namespace: the last field of ``NSpid:`` in /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()[1:]
            try:
                return int(fields[-1]) if fields else None
            except ValueError:
                return None
    return None
