"""Turn and prefetch counters kept by the state machine, exported as frozen snapshots.

The state machine records into these plain accumulators (no prometheus_client here, so the machine
stays pure and unit-testable); :mod:`gpulane_agent.coordinator.collector` turns a snapshot into
metric families on each scrape.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from gpulane_core.model import LaneId

# Turn waits span sub-millisecond hand-offs to minutes behind long iterations.
WAIT_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
HOLD_BUCKETS_S: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    buckets: tuple[float, ...]  # upper bounds, +Inf implied
    counts: tuple[int, ...]  # cumulative count per bound, then the +Inf count
    total: float

    @property
    def count(self) -> int:
        return self.counts[-1]


@dataclass(slots=True)
class Histogram:
    """A fixed-bucket histogram (cumulative on snapshot)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def snapshot(self) -> HistogramSnapshot:
        cumulative: list[int] = []
        running = 0
        for count in self.counts:
            running += count
            cumulative.append(running)
        return HistogramSnapshot(self.buckets, tuple(cumulative), self.total)


@dataclass(frozen=True, slots=True)
class LaneMetricsSnapshot:
    lane: LaneId
    turns: int
    prefetch_signals: int
    timeouts: int
    waiters: int
    wait: HistogramSnapshot
    hold: HistogramSnapshot


@dataclass(slots=True)
class LaneMetrics:
    """Counters of one lane; they survive the lane emptying so counters stay monotonic."""

    lane: LaneId
    turns: int = 0
    prefetch_signals: int = 0
    timeouts: int = 0
    wait: Histogram = field(default_factory=lambda: Histogram(WAIT_BUCKETS_S))
    hold: Histogram = field(default_factory=lambda: Histogram(HOLD_BUCKETS_S))

    def snapshot(self, waiters: int) -> LaneMetricsSnapshot:
        return LaneMetricsSnapshot(
            self.lane, self.turns, self.prefetch_signals, self.timeouts, waiters, self.wait.snapshot(), self.hold.snapshot()
        )
