"""Workload files to frozen jobs: the native CSV/YAML format and the Salus and Tiresias traces.

Every error names the file, the line (for CSV; the entry index for YAML), the field and the reason,
as one line, so a user can fix the input without reading code.

Native format (CSV with this header, or YAML: a list of mappings or ``{jobs: [...]}``)::

    name,arrival_s,gpus,persistent_mib,ephemeral_mib,iteration_s,iterations,working_set_mib[,class,priority]

Memory fields accept plain MiB numbers or quantities ("2Gi", "512Mi").

Salus ``workloads.csv`` (no header: name, JCT s, peak MB, iterations, command) lacks arrivals and the
persistent/ephemeral split. Assumptions, all parameters of :class:`TraceAssumptions`: every job
arrives at ``arrival_gap_s * row`` (0 = all at once); the peak (MB = 10^6 bytes) is split into
``persistent_fraction`` persistent and the rest ephemeral; the working set that must come back after
a lane peer ran is the persistent part (model and optimizer state); iteration time = JCT / iterations.

Tiresias ``60_job.csv`` (job_id, num_gpu, submit_time, iterations, model_name, duration, interval)
lacks memory: each model gets the peak of its batch-25 row in Salus' table (the same benchmark suite),
split as above; iteration time = duration / iterations.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpulane_core.model import Job, JobClass, JobId, validate_job
from gpulane_core.quantity import MIB, QuantityError, parse_mib

NATIVE_FIELDS = (
    "name",
    "arrival_s",
    "gpus",
    "persistent_mib",
    "ephemeral_mib",
    "iteration_s",
    "iterations",
    "working_set_mib",
)
OPTIONAL_FIELDS = ("class", "priority")
MB = 10**6

# Peak memory (MB) of the batch-25 configuration per model, from Salus' tests/workloads.csv.
SALUS_BATCH25_PEAK_MB: Mapping[str, float] = {
    "vgg11": 3709.6,
    "vgg16": 4316.8,
    "vgg19": 4463.1,
    "resnet50": 2116.0,
    "resnet101": 3237.5,
    "resnet152": 4563.0,
    "googlenet": 756.1,
    "alexnet": 686.6,
    "overfeat": 3255.0,
    "inception3": 2499.6,
    "inception4": 4445.1,
}


class WorkloadError(ValueError):
    """A workload that cannot be used; the message is one line naming file, line, field and reason."""


@dataclass(frozen=True, slots=True)
class TraceAssumptions:
    persistent_fraction: float = 0.25
    arrival_gap_s: float = 0.0

    def validate(self) -> list[str]:
        problems: list[str] = []
        if not 0.0 <= self.persistent_fraction <= 1.0:
            problems.append(f"persistent_fraction: must be within 0..1, got {self.persistent_fraction}")
        if self.arrival_gap_s < 0:
            problems.append(f"arrival_gap_s: must not be negative, got {self.arrival_gap_s}")
        return problems


@dataclass(frozen=True, slots=True)
class Workload:
    source: str
    jobs: tuple[Job, ...]
    lines: Mapping[str, int]  # job name -> line (CSV) or entry number (YAML), for later error messages


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _number(path: Path, line: int, field: str, text: object, *, integer: bool = False) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise WorkloadError(f"{_where(path, line)}: {field}: {text!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise WorkloadError(f"{_where(path, line)}: {field}: {text!r} is not a finite number")
    if value < 0:
        raise WorkloadError(f"{_where(path, line)}: {field}: must not be negative, got {text}")
    if integer and value != int(value):
        raise WorkloadError(f"{_where(path, line)}: {field}: must be a whole number, got {text}")
    return value


def _mib(path: Path, line: int, field: str, text: object) -> int:
    raw = str(text).strip()
    if raw.startswith("-"):
        raise WorkloadError(f"{_where(path, line)}: {field}: must not be negative, got {raw}")
    try:
        return parse_mib(raw)
    except QuantityError as exc:
        raise WorkloadError(f"{_where(path, line)}: {field}: {exc}") from None


def job_from_row(path: Path, line: int, row: Mapping[str, Any]) -> Job:
    """One native row to a Job, or a WorkloadError naming the field."""
    for field in NATIVE_FIELDS:
        value = row.get(field)
        if value is None or str(value).strip() == "":
            raise WorkloadError(f"{_where(path, line)}: {field}: missing")
    name = str(row["name"]).strip()
    klass_text = str(row.get("class") or "guaranteed").strip().lower()
    try:
        klass = JobClass(klass_text)
    except ValueError:
        raise WorkloadError(
            f"{_where(path, line)}: class: {klass_text!r} is not guaranteed or best-effort"
        ) from None
    priority_text = row.get("priority")
    priority = 0
    if priority_text is not None and str(priority_text).strip() != "":
        try:
            priority = int(str(priority_text).strip())
        except ValueError:
            raise WorkloadError(
                f"{_where(path, line)}: priority: {priority_text!r} is not an integer"
            ) from None
    job = Job(
        name=JobId(name),
        arrival_s=_number(path, line, "arrival_s", row["arrival_s"]),
        gpus=int(_number(path, line, "gpus", row["gpus"], integer=True)),
        persistent_mib=_mib(path, line, "persistent_mib", row["persistent_mib"]),
        ephemeral_mib=_mib(path, line, "ephemeral_mib", row["ephemeral_mib"]),
        iteration_s=_number(path, line, "iteration_s", row["iteration_s"]),
        iterations=int(_number(path, line, "iterations", row["iterations"], integer=True)),
        working_set_mib=_mib(path, line, "working_set_mib", row["working_set_mib"]),
        job_class=klass,
        priority=priority,
    )
    problems = validate_job(job)
    if problems:
        raise WorkloadError(f"{_where(path, line)}: {problems[0]}")
    return job


def _collect(path: Path, entries: Iterable[tuple[int, Job]]) -> Workload:
    jobs: list[Job] = []
    lines: dict[str, int] = {}
    for line, job in entries:
        if job.name in lines:
            raise WorkloadError(f"{_where(path, line)}: name: {job.name!r} repeats line {lines[job.name]}")
        lines[job.name] = line
        jobs.append(job)
    if not jobs:
        raise WorkloadError(f"{path}: the workload has no jobs")
    return Workload(str(path), tuple(jobs), lines)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WorkloadError(f"{path}: not a UTF-8 text file") from None


def load_native_csv(path: Path) -> Workload:
    lines = [ln for ln in _read_text(path).splitlines()]
    # Lines starting with '#' are comments (the shipped demo explains its derivation there).
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise WorkloadError(f"{path}: the workload has no jobs (empty file)")
    header_line, header_text = numbered[0]
    header = [h.strip() for h in next(csv.reader([header_text]))]
    missing = [f for f in NATIVE_FIELDS if f not in header]
    if missing:
        raise WorkloadError(f"{_where(path, header_line)}: header: missing column(s) {', '.join(missing)}")
    unknown = [h for h in header if h not in NATIVE_FIELDS and h not in OPTIONAL_FIELDS]
    if unknown:
        raise WorkloadError(f"{_where(path, header_line)}: header: unknown column(s) {', '.join(unknown)}")

    def rows() -> Iterable[tuple[int, Job]]:
        for line, text in numbered[1:]:
            cells = next(csv.reader([text]))
            if len(cells) != len(header):
                raise WorkloadError(
                    f"{_where(path, line)}: row has {len(cells)} fields, header has {len(header)}"
                )
            yield line, job_from_row(path, line, dict(zip(header, cells, strict=True)))

    return _collect(path, rows())


def load_native_yaml(path: Path) -> Workload:
    import yaml  # only YAML workloads need it

    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise WorkloadError(f"{_where(path, line)}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if isinstance(data, dict):
        data = data.get("jobs")
    if not isinstance(data, list):
        raise WorkloadError(f"{path}: jobs: expected a list of job mappings (or {{jobs: [...]}})")

    def rows() -> Iterable[tuple[int, Job]]:
        for i, entry in enumerate(data, start=1):
            if not isinstance(entry, dict):
                raise WorkloadError(f"{path}: entry {i}: expected a mapping, got {type(entry).__name__}")
            yield i, job_from_row(path, i, entry)

    return _collect(path, rows())


def _split(peak_mb: float, assumptions: TraceAssumptions) -> tuple[int, int]:
    peak_mib = math.ceil(peak_mb * MB / MIB)
    persistent = math.ceil(peak_mib * assumptions.persistent_fraction)
    return persistent, max(0, peak_mib - persistent)


def load_salus(path: Path, assumptions: TraceAssumptions = TraceAssumptions()) -> Workload:
    def rows() -> Iterable[tuple[int, Job]]:
        reader = csv.reader(_read_text(path).splitlines())
        seen: dict[str, int] = {}
        for line, cells in enumerate(reader, start=1):
            if not cells or not "".join(cells).strip():
                continue
            if len(cells) < 4:
                raise WorkloadError(f"{_where(path, line)}: expected name, JCT, peak MB, iterations, command")
            name = cells[0].strip()
            # The Salus table repeats a name once (vgg16_100_1min); keep both, suffixing the repeat.
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}-{seen[name]}"
            jct = _number(path, line, "jct_s", cells[1])
            peak = _number(path, line, "peak_mb", cells[2])
            iterations = int(_number(path, line, "iterations", cells[3], integer=True))
            if iterations < 1 or jct <= 0:
                raise WorkloadError(f"{_where(path, line)}: iterations and JCT must be positive")
            persistent, ephemeral = _split(peak, assumptions)
            yield (
                line,
                Job(
                    JobId(name),
                    persistent,
                    ephemeral,
                    arrival_s=assumptions.arrival_gap_s * (line - 1),
                    iteration_s=jct / iterations,
                    iterations=iterations,
                    working_set_mib=persistent,
                ),
            )

    return _collect(path, rows())


def load_tiresias(path: Path, assumptions: TraceAssumptions = TraceAssumptions()) -> Workload:
    def rows() -> Iterable[tuple[int, Job]]:
        reader = csv.DictReader(_read_text(path).splitlines())
        for line, row in enumerate(reader, start=2):
            model = (row.get("model_name") or "").strip()
            if model not in SALUS_BATCH25_PEAK_MB:
                known = ", ".join(sorted(SALUS_BATCH25_PEAK_MB))
                raise WorkloadError(
                    f"{_where(path, line)}: model_name: {model!r} has no memory profile ({known})"
                )
            iterations = int(_number(path, line, "iterations", row.get("iterations"), integer=True))
            duration = _number(path, line, "duration", row.get("duration"))
            if iterations < 1 or duration <= 0:
                raise WorkloadError(f"{_where(path, line)}: iterations and duration must be positive")
            persistent, ephemeral = _split(SALUS_BATCH25_PEAK_MB[model], assumptions)
            yield (
                line,
                Job(
                    JobId(f"job-{row.get('job_id', line).strip()}-{model}"),
                    persistent,
                    ephemeral,
                    gpus=int(_number(path, line, "num_gpu", row.get("num_gpu"), integer=True)),
                    arrival_s=_number(path, line, "submit_time", row.get("submit_time")),
                    iteration_s=duration / iterations,
                    iterations=iterations,
                    working_set_mib=persistent,
                ),
            )

    return _collect(path, rows())


def sniff_format(path: Path) -> str:
    """'yaml', 'native', 'tiresias' or 'salus' from the extension and the first line."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return "yaml"
    first = next(
        (ln for ln in _read_text(path).splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
    )
    if first.startswith("job_id,") and "model_name" in first:
        return "tiresias"
    if first.startswith("name,"):
        return "native"
    cells = first.split(",")
    if len(cells) >= 5 and cells[0].count("_") >= 2:
        return "salus"
    return "native"


def load_workload(
    path: Path, fmt: str = "auto", assumptions: TraceAssumptions = TraceAssumptions()
) -> Workload:
    problems = assumptions.validate()
    if problems:
        raise WorkloadError("; ".join(problems))
    chosen = sniff_format(path) if fmt == "auto" else fmt
    loaders = {
        "native": lambda: load_native_csv(path),
        "yaml": lambda: load_native_yaml(path),
        "salus": lambda: load_salus(path, assumptions),
        "tiresias": lambda: load_tiresias(path, assumptions),
    }
    if chosen not in loaders:
        raise WorkloadError(f"format: unknown workload format {chosen!r} (known: auto, {', '.join(loaders)})")
    return loaders[chosen]()
