"""Prometheus export of the coordinator's turn metrics (names from ``docs/contracts.md``).

A custom Collector builds fresh families from a snapshot on every scrape (client_python's pattern),
so the state machine never touches prometheus_client and tests use a private registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gpulane_agent.coordinator.metrics import HistogramSnapshot, LaneMetricsSnapshot

TURNS_TOTAL = "gpulane_lane_turns_total"
TURN_WAIT_SECONDS = "gpulane_lane_turn_wait_seconds"
TURN_HOLD_SECONDS = "gpulane_lane_turn_hold_seconds"
PREFETCH_SIGNALS_TOTAL = "gpulane_prefetch_signals_total"
TURN_TIMEOUTS_TOTAL = "gpulane_lane_turn_timeouts_total"
LANE_WAITERS = "gpulane_lane_waiters"
LABELS = ("lane", "Hostname")


def _buckets(h: HistogramSnapshot) -> list[tuple[str, float]]:
    bounds = [repr(float(b)) for b in h.buckets] + ["+Inf"]
    return [(bound, float(count)) for bound, count in zip(bounds, h.counts, strict=True)]


class TurnCollector(Collector):
    """Collects from ``source`` (the coordinator's ``metrics`` method) at scrape time."""

    def __init__(self, source: Callable[[], Sequence[LaneMetricsSnapshot]], hostname: str) -> None:
        self._source = source
        self._hostname = hostname

    def collect(self) -> Iterator[Metric]:
        turns = CounterMetricFamily(TURNS_TOTAL, "Lane turns granted.", labels=LABELS)
        prefetch = CounterMetricFamily(
            PREFETCH_SIGNALS_TOTAL, "Prefetch signals sent to the job expected next.", labels=LABELS
        )
        timeouts = CounterMetricFamily(
            TURN_TIMEOUTS_TOTAL, "Turns revoked because the holder missed its deadline.", labels=LABELS
        )
        waiters = GaugeMetricFamily(LANE_WAITERS, "Jobs waiting for a turn in the lane.", labels=LABELS)
        wait = HistogramMetricFamily(TURN_WAIT_SECONDS, "Time from turn request to grant.", labels=LABELS)
        hold = HistogramMetricFamily(TURN_HOLD_SECONDS, "Time a job held the lane per turn.", labels=LABELS)
        for snap in self._source():
            labels = [str(snap.lane), self._hostname]
            turns.add_metric(labels, snap.turns)
            prefetch.add_metric(labels, snap.prefetch_signals)
            timeouts.add_metric(labels, snap.timeouts)
            waiters.add_metric(labels, snap.waiters)
            wait.add_metric(labels, _buckets(snap.wait), snap.wait.total)
            hold.add_metric(labels, _buckets(snap.hold), snap.hold.total)
        yield from (turns, wait, hold, prefetch, timeouts, waiters)
