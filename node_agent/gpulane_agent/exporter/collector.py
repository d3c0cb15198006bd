"""GpuCollector: a prometheus_client custom Collector that builds fresh metric families on every scrape.

It reads the backend live (memory, utilization) and the agent's latest NodeView (lanes, per-pod usage)
and counters. One GPU's failing reading drops only that GPU's affected samples and increments
``gpulane_backend_errors_total{operation}``; the scrape itself never fails because of the hardware.
"""

from __future__ import annotations

from collections.abc import Iterator

from gpulane_core.quantity import MIB
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from gpulane_agent.exporter import names as n
from gpulane_agent.gpu.backend import GpuBackend, GpuError, GpuLostError
from gpulane_agent.health import HealthBoard
from gpulane_agent.lanes import ViewHolder
from gpulane_agent.stats import AgentStats


class GpuCollector:
    def __init__(
        self, backend: GpuBackend, board: HealthBoard, view: ViewHolder, stats: AgentStats, hostname: str
    ) -> None:
        self._backend = backend
        self._board = board
        self._view = view
        self._stats = stats
        self._host = hostname

    def describe(self) -> list[Metric]:
        # Empty: registration must not trigger a hardware read (the registry would call collect()).
        return []

    def collect(self) -> Iterator[Metric]:
        gpus = self._backend.gpus()
        health = self._board.snapshot(g.index for g in gpus)
        util = GaugeMetricFamily(n.GPU_UTILIZATION_RATIO, "GPU compute utilization, 0..1.", labels=n.GPU_LABELS)
        used = GaugeMetricFamily(n.GPU_MEMORY_USED_BYTES, "GPU memory in use, bytes.", labels=n.GPU_LABELS)
        total = GaugeMetricFamily(n.GPU_MEMORY_TOTAL_BYTES, "GPU memory in total, bytes.", labels=n.GPU_LABELS)
        healthy = GaugeMetricFamily(n.GPU_HEALTHY, "1 if the GPU is healthy, else 0.", labels=n.GPU_LABELS)
        info = GaugeMetricFamily(n.GPU_INFO, "Always 1; carries the GPU model.", labels=n.GPU_LABELS)
        d_util = GaugeMetricFamily(n.DCGM_GPU_UTIL, "GPU utilization (in %).", labels=n.DCGM_LABELS)
        d_used = GaugeMetricFamily(n.DCGM_FB_USED, "Framebuffer memory used (in MiB).", labels=n.DCGM_LABELS)
        d_free = GaugeMetricFamily(n.DCGM_FB_FREE, "Framebuffer memory free (in MiB).", labels=n.DCGM_LABELS)
        for gpu in gpus:
            labels = [str(gpu.index), gpu.uuid, gpu.model, self._host]
            dcgm = [str(gpu.index), gpu.uuid, f"nvidia{gpu.index}", gpu.model, self._host]
            ok = health.get(gpu.index, True)
            info.add_metric(labels, 1.0)
            total.add_metric(labels, float(gpu.memory_total_bytes))
            try:
                mem = self._backend.memory(gpu.index)
                used.add_metric(labels, float(mem.used_bytes))
                d_used.add_metric(dcgm, float(mem.used_bytes // MIB))
                d_free.add_metric(dcgm, float(mem.free_bytes // MIB))
            except GpuError as exc:
                self._stats.backend_error(exc.operation)
                ok = ok and not isinstance(exc, GpuLostError)
            try:
                ratio = self._backend.utilization(gpu.index)
                util.add_metric(labels, ratio)
                d_util.add_metric(dcgm, round(ratio * 100.0))
            except GpuError as exc:
                self._stats.backend_error(exc.operation)
                ok = ok and not isinstance(exc, GpuLostError)
            healthy.add_metric(labels, 1.0 if ok else 0.0)
        yield from (util, used, total, healthy, info, d_util, d_used, d_free)
        yield from self._lane_families()
        yield from self._counter_families()

    def _lane_families(self) -> Iterator[Metric]:
        view = self._view.current
        size = GaugeMetricFamily(n.LANE_SIZE_BYTES, "Lane size decided by the operator, bytes.", labels=n.LANE_LABELS)
        used = GaugeMetricFamily(n.LANE_USED_BYTES, "GPU memory used by the lane's pods, bytes.", labels=n.LANE_LABELS)
        jobs = GaugeMetricFamily(n.LANE_JOBS, "Jobs sharing the lane.", labels=n.LANE_LABELS)
        for lane in view.lanes:
            labels = [str(lane.gpu_index), lane.gpu_uuid, lane.lane, self._host]
            size.add_metric(labels, float(lane.size_mib * MIB))
            used.add_metric(labels, float(lane.used_bytes))
            jobs.add_metric(labels, float(len(lane.jobs)))
        pod_used = GaugeMetricFamily(
            n.POD_MEMORY_USED_BYTES, "GPU memory used by the pod's container, bytes.", labels=n.POD_USED_LABELS
        )
        pod_limit = GaugeMetricFamily(
            n.POD_MEMORY_LIMIT_BYTES, "GPU memory the pod may use (persistent + lane), bytes.",
            labels=n.POD_LIMIT_LABELS,
        )
        by_uid = {pl.uid: pl for pl in view.pod_lanes}
        for u in view.usage:
            pl = by_uid.get(u.uid)
            if pl is not None:
                pod_used.add_metric([pl.namespace, pl.pod, u.container, pl.lane, u.gpu_uuid, self._host], u.used_bytes)
        for pl in view.pod_lanes:
            for gpu_uuid in pl.gpu_uuids:  # the limit is per GPU
                pod_limit.add_metric([pl.namespace, pl.pod, pl.lane, gpu_uuid, self._host], float(pl.limit_mib * MIB))
        yield from (size, used, jobs, pod_used, pod_limit)

    def _counter_families(self) -> Iterator[Metric]:
        violations = CounterMetricFamily(
            n.LANE_VIOLATIONS_TOTAL, "Pods found over their lane limit, by action taken.",
            labels=(n.NAMESPACE, n.POD, n.LANE, n.ACTION, n.HOSTNAME),
        )
        for (ns, pod, lane, action), count in sorted(self._stats.violations().items()):
            violations.add_metric([ns, pod, lane, action, self._host], float(count))
        allocations = CounterMetricFamily(
            n.ALLOCATIONS_TOTAL, "Device-plugin Allocate calls, by result.", labels=(n.RESULT, n.HOSTNAME)
        )
        counts = self._stats.allocations()
        for result in ("ok", "error"):  # both series always exist so rate() works from the first error
            allocations.add_metric([result, self._host], float(counts.get(result, 0)))
        errors = CounterMetricFamily(
            n.BACKEND_ERRORS_TOTAL, "Failed GPU backend readings, by operation.", labels=(n.OPERATION, n.HOSTNAME)
        )
        for operation, count in sorted(self._stats.backend_errors().items()):
            errors.add_metric([operation, self._host], float(count))
        yield from (violations, allocations, errors)
