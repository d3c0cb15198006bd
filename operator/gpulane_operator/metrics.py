"""Operator metrics (names in docs/contracts.md "Operator"), on a private registry served on :8080.

The registry belongs to the running operator (kept in kopf's memo), never to the module, so tests
and a second operator in one process see only their own samples.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpulane_core.cluster import ClusterState
from gpulane_core.quantity import MIB
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from gpulane_operator.crd import Phase

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
COMPLETION_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0, 72 * 3600.0)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.queue_length = Gauge("gpulane_queue_length", "Pending GPUShareJobs by class", ["class"], registry=r)
        self.placements = Counter(
            "gpulane_placements", "Placement attempts by result (bound, error)", ["result"], registry=r
        )
        self.placement_latency = Histogram(
            "gpulane_placement_latency_seconds",
            "Seconds from GPUShareJob creation to its pod being bound",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.unschedulable = Counter(
            "gpulane_unschedulable", "Times a job was (re)marked not schedulable, by reason", ["reason"], registry=r
        )
        self.lane_memory = Gauge(
            "gpulane_lane_memory_allocated_bytes",
            "Memory committed on a GPU: persistent memory of its jobs plus lane sizes",
            ["node", "gpu", "UUID"],
            registry=r,
        )
        self.jobs = Gauge("gpulane_jobs", "GPUShareJobs by phase", ["phase"], registry=r)
        self.job_completion = Histogram(
            "gpulane_job_completion_seconds",
            "Seconds from GPUShareJob creation to Succeeded or Failed",
            buckets=COMPLETION_BUCKETS,
            registry=r,
        )
        self.preemptions = Counter("gpulane_preemptions", "Best-effort jobs preempted", registry=r)
        self.cycles = Counter("gpulane_scheduling_cycles", "Scheduling cycles run", ["result"], registry=r)

    def observe_state(self, state: ClusterState) -> None:
        self.lane_memory.clear()
        for name, view in state.nodes.items():
            for gpu in view.node.gpus:
                committed = view.lanes[gpu.index].committed_mib * MIB
                self.lane_memory.labels(node=name, gpu=str(gpu.index), UUID=gpu.uuid).set(committed)

    def observe_counts(self, queue: Mapping[str, int], phases: Mapping[str, int]) -> None:
        for cls, n in queue.items():
            self.queue_length.labels(**{"class": cls}).set(n)
        for phase in Phase:
            self.jobs.labels(phase=phase.value).set(phases.get(phase.value, 0))

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)
