"""Loaders for the Alibaba GPU-sharing trace (cluster-trace-gpu-v2023) node and pod lists.

Parse only: each row becomes a frozen value; a bad row is a :class:`TraceError` naming the file,
the line and the field. Columns not needed for placement (QoS, phase, times) are ignored.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpulane_core.fragmentation.types import NodeState, PodShape, validate_pod_shape

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec")


class TraceError(ValueError):
    """A trace file that cannot be used; the message names file, line and field."""

    def __init__(self, path: Path | str, line: int, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class TracePod:
    name: str
    shape: PodShape


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(path, 0, "", f"cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if not header:
            raise TraceError(path, 1, "", "empty file (expected a header row)")
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(path, 1, missing[0], f"missing column (have: {', '.join(header)})")
        for row in reader:
            yield reader.line_num, row


def _int(path: Path, line: int, row: dict[str, str], field: str, *, minimum: int = 0) -> int:
    text = (row.get(field) or "").strip()
    try:
        value = int(float(text)) if text else 0
    except ValueError:
        raise TraceError(path, line, field, f"not a number: {text!r}") from None
    if value < minimum:
        raise TraceError(path, line, field, f"must be at least {minimum}, got {value}")
    return value


def load_nodes(path: Path | str) -> list[NodeState]:
    """GPU nodes (``sn, cpu_milli, memory_mib, gpu, model``); nodes without GPUs are kept."""
    path = Path(path)
    nodes: list[NodeState] = []
    seen: set[str] = set()
    for line, row in _rows(path, NODE_COLUMNS):
        name = (row.get("sn") or "").strip()
        if not name:
            raise TraceError(path, line, "sn", "empty node name")
        if name in seen:
            raise TraceError(path, line, "sn", f"duplicate node name {name!r}")
        seen.add(name)
        gpus = _int(path, line, row, "gpu")
        model = (row.get("model") or "").strip()
        if model.lower() == "nan":
            model = ""
        if gpus and not model:
            raise TraceError(path, line, "model", "a node with GPUs needs a GPU model")
        cpu = _int(path, line, row, "cpu_milli")
        memory = _int(path, line, row, "memory_mib")
        nodes.append(NodeState.empty(name, model, cpu, memory, gpus))
    if not nodes:
        raise TraceError(path, 0, "", "no nodes (the file has a header but no rows)")
    return nodes


def load_pods(path: Path | str) -> list[TracePod]:
    """Pods (``name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec``); ``gpu_spec`` is ``A|B``."""
    path = Path(path)
    pods: list[TracePod] = []
    for line, row in _rows(path, POD_COLUMNS):
        name = (row.get("name") or "").strip()
        if not name:
            raise TraceError(path, line, "name", "empty pod name")
        spec = (row.get("gpu_spec") or "").strip()
        types = tuple(sorted({t for t in spec.split("|") if t and t.lower() != "nan"}))
        shape = PodShape(
            cpu_milli=_int(path, line, row, "cpu_milli"),
            num_gpu=_int(path, line, row, "num_gpu"),
            gpu_milli=_int(path, line, row, "gpu_milli"),
            gpu_types=types,
            memory_mib=_int(path, line, row, "memory_mib"),
        )
        problems = validate_pod_shape(shape)
        if problems:
            field, _, reason = problems[0].partition(": ")
            raise TraceError(path, line, field, reason)
        pods.append(TracePod(name, shape))
    if not pods:
        raise TraceError(path, 0, "", "no pods (the file has a header but no rows)")
    return pods
