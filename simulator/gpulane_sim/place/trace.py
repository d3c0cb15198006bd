"""Loaders for the Alibaba GPU-sharing trace (cluster-trace-gpu-v2023) node and pod lists.

Parse only: each row becomes a frozen value; a bad row is a :class:`TraceError` naming the file,
the line and the field. Columns not needed for placement (QoS, phase, times) are ignored.

Every published column layout of the pod list is accepted. An absent column takes the default of the
FGD simulator's converter (alibaba/clusterdata ``pod_csv_to_yaml.py``): the name may be ``job_id``
instead (named ``job-0007``); the CPU may be ``cpu`` or ``num_cpu`` in cores instead of ``cpu_milli``;
no ``memory_mib`` requests no memory; no ``gpu_milli`` means whole GPUs (1000); no ``gpu_spec`` means
any GPU model; ``qos``, ``pod_phase`` and the times are never needed. ``num_gpu`` is required.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpulane_core.fragmentation.types import NodeState, PodShape, validate_pod_shape

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec")  # the full layout
POD_REQUIRED = ("num_gpu",)
POD_NAME_COLUMNS = ("name", "job_id")  # the first one present names the pod
POD_CPU_COLUMNS = (("cpu_milli", 1), ("cpu", 1000), ("num_cpu", 1000))  # column, milli per unit
WHOLE_GPU_MILLI = 1000  # gpu_milli when the column is absent


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


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), [])
    except OSError as exc:
        raise TraceError(path, 0, "", f"cannot read: {exc.strerror or exc}") from None


def _first_present(path: Path, header: list[str], options: tuple[str, ...]) -> str:
    for column in options:
        if column in header:
            return column
    raise TraceError(path, 1, options[0], f"missing column (or {', '.join(options[1:])}; have: {', '.join(header)})")


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
    """Pods (``name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec``, or any published subset:
    see the module docstring for the defaults); ``gpu_spec`` is ``A|B``."""
    path = Path(path)
    header = _header(path)
    name_column = _first_present(path, header, POD_NAME_COLUMNS) if header else "name"
    cpu_column, cpu_scale = next(((c, k) for c, k in POD_CPU_COLUMNS if c in header), POD_CPU_COLUMNS[0])
    if header and cpu_column not in header:
        others = ", ".join(c for c, _ in POD_CPU_COLUMNS[1:])
        raise TraceError(path, 1, cpu_column, f"missing column (or {others}; have: {', '.join(header)})")
    pods: list[TracePod] = []
    for line, row in _rows(path, (*POD_REQUIRED, name_column, cpu_column)):
        raw = (row.get(name_column) or "").strip()
        if not raw:
            raise TraceError(path, line, name_column, "empty pod name")
        name = raw if name_column == "name" else f"job-{_int(path, line, row, name_column):04d}"
        spec = (row.get("gpu_spec") or "").strip()
        types = tuple(sorted({t for t in spec.split("|") if t and t.lower() != "nan"}))
        cpu = _number(path, line, row, cpu_column) * cpu_scale
        num_gpu = _int(path, line, row, "num_gpu")
        if "gpu_milli" in header:
            gpu_milli = _int(path, line, row, "gpu_milli")
        else:
            gpu_milli = WHOLE_GPU_MILLI if num_gpu else 0
        shape = PodShape(
            cpu_milli=int(cpu),
            num_gpu=num_gpu,
            gpu_milli=gpu_milli,
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


def _number(path: Path, line: int, row: dict[str, str], field: str) -> float:
    text = (row.get(field) or "").strip()
    try:
        value = float(text) if text else 0.0
    except ValueError:
        raise TraceError(path, line, field, f"not a number: {text!r}") from None
    if value < 0:
        raise TraceError(path, line, field, f"must be at least 0, got {value:g}")
    return value
