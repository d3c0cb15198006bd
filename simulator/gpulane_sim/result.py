"""What a simulation run produces: per-job outcomes, totals, and the summary metrics people compare."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpulane_core.model import JobId

from gpulane_sim.events import LaneKey


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job: JobId
    arrival_s: float
    first_start_s: float  # start of its first iteration
    finish_s: float
    attained_s: float

    @property
    def jct_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def queueing_s(self) -> float:
        return self.first_start_s - self.arrival_s


@dataclass(frozen=True, slots=True)
class Segment:
    """One interval on the Gantt chart: a lane computing a job, or its copy engine moving one in."""

    lane: LaneKey
    job: JobId
    kind: str  # "compute" or "transfer"
    start_s: float
    end_s: float


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation, so it is always one of the values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class SimResult:
    policy: str
    makespan_s: float
    jobs: tuple[JobOutcome, ...]
    gpus: int
    gpu_busy_s: float  # GPU-seconds with at least one iteration computing
    bytes_moved: int
    transfers: int
    transfer_s: float
    lane_memory_utilization: float  # time-averaged committed (persistent + lanes) / capacity
    segments: tuple[Segment, ...] = ()

    def summary(self) -> dict[str, float | int]:
        jcts = [o.jct_s for o in self.jobs]
        queueing = [o.queueing_s for o in self.jobs]
        span = self.makespan_s
        return {
            "makespan_s": span,
            "avg_jct_s": sum(jcts) / len(jcts) if jcts else 0.0,
            "p95_jct_s": percentile(jcts, 95),
            "avg_queueing_s": sum(queueing) / len(queueing) if queueing else 0.0,
            "gpu_utilization": self.gpu_busy_s / (self.gpus * span) if span > 0 else 0.0,
            "bytes_moved": self.bytes_moved,
            "transfers": self.transfers,
            "transfer_s": self.transfer_s,
            "lane_memory_utilization": self.lane_memory_utilization,
            "jobs": len(self.jobs),
        }
