"""The turn Collector exports the contract's metric names from a snapshot, on a private registry."""

from __future__ import annotations

from gpulane_agent.coordinator.collector import TurnCollector
from gpulane_agent.coordinator.lane import ConnId
from gpulane_agent.coordinator.machine import Coordinator
from gpulane_agent.coordinator.protocol import Hello, RequestTurn, TurnDone
from gpulane_agent.coordinator.settings import TurnSettings
from gpulane_core.model import JobId, LaneId
from gpulane_core.ordering import OrderingPolicy
from prometheus_client import CollectorRegistry, generate_latest


def test_collector_exports_turn_metrics_with_lane_and_hostname() -> None:
    machine = Coordinator(TurnSettings(policy=OrderingPolicy.FAIR, turn_timeout_s=1.0))
    lane = LaneId("GPU-1/lane-2")
    for i, job in enumerate("abc"):
        machine.handle(ConnId(i), Hello(JobId(job), lane), 0.0)
        machine.handle(ConnId(i), RequestTurn(), 0.0)
    machine.handle(ConnId(0), TurnDone(1, 0.02), 0.02)  # b granted after 0.02 s, c prefetches
    machine.tick(5.0)  # b misses its deadline; c granted
    registry = CollectorRegistry()
    registry.register(TurnCollector(machine.metrics, "node-1"))
    labels = {"lane": "GPU-1/lane-2", "Hostname": "node-1"}
    get = registry.get_sample_value
    assert get("gpulane_lane_turns_total", labels) == 3
    assert get("gpulane_prefetch_signals_total", labels) == 2
    assert get("gpulane_lane_turn_timeouts_total", labels) == 1
    assert get("gpulane_lane_waiters", labels) == 0
    assert get("gpulane_lane_turn_wait_seconds_count", labels) == 3
    assert get("gpulane_lane_turn_wait_seconds_bucket", {**labels, "le": "0.05"}) == 2  # a at 0, b at 0.02
    assert get("gpulane_lane_turn_wait_seconds_bucket", {**labels, "le": "+Inf"}) == 3
    assert get("gpulane_lane_turn_hold_seconds_count", labels) == 2
    assert get("gpulane_lane_turn_hold_seconds_sum", labels) == 0.02 + 4.98
    text = generate_latest(registry).decode()
    assert "# TYPE gpulane_lane_turn_hold_seconds histogram" in text


def test_collector_with_no_lanes_yields_empty_families() -> None:
    registry = CollectorRegistry()
    registry.register(TurnCollector(Coordinator().metrics, "node-1"))
    assert registry.get_sample_value("gpulane_lane_turns_total", {"lane": "x", "Hostname": "node-1"}) is None
