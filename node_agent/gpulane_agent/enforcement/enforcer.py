"""Measure -> judge -> apply, once per agent tick.

``measure`` reads the backend and /proc (blocking, run in a thread); ``judge`` is pure
(``verdict.judge``); ``apply`` emits a Kubernetes Event for every new violation, counts it in
``gpulane_lane_violations_total`` and, under ``evict``, evicts the pod through the Eviction API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gpulane_agent.enforcement.attribution import CgroupOwner, ProcReader, attribute
from gpulane_agent.enforcement.verdict import Action, Violation, judge
from gpulane_agent.gpu.backend import GpuBackend, GpuError, GpuProcess
from gpulane_agent.kube.api import EventSpec, KubeApi, KubeError
from gpulane_agent.lanes import ContainerUsage, PodLane
from gpulane_agent.settings import EnforcementConfig
from gpulane_agent.stats import AgentStats

log = logging.getLogger(__name__)

REASON_OVER_LANE = "GPULaneExceeded"
REASON_EVICTED = "GPULaneEvicted"


class Enforcer:
    def __init__(self, backend: GpuBackend, proc: ProcReader, config: EnforcementConfig, stats: AgentStats) -> None:
        self._backend = backend
        self._proc = proc
        self._config = config
        self._stats = stats
        self._flagged: frozenset[str] = frozenset()

    def measure(
        self, lanes: Sequence[PodLane], fallback_containers: Mapping[str, str] | None = None
    ) -> tuple[ContainerUsage, ...]:
        """GPU memory per pod container and GPU, from every readable GPU (a failing one is counted and skipped)."""
        processes: dict[str, tuple[GpuProcess, ...]] = {}
        for gpu in self._backend.gpus():
            try:
                processes[gpu.uuid] = self._backend.processes(gpu.index)
            except GpuError as exc:
                self._stats.backend_error(exc.operation)
        pids = {p.pid for on_gpu in processes.values() for p in on_gpu}
        owners: dict[int, CgroupOwner | None] = {pid: self._proc.owner(pid) for pid in pids}
        return attribute(processes, owners, lanes, fallback_containers)

    def decide(self, lanes: Sequence[PodLane], usage: Sequence[ContainerUsage]) -> tuple[Violation, ...]:
        live = frozenset(pl.uid for pl in lanes)
        verdict = judge(lanes, usage, self._config.policy, self._config.tolerance_mib, self._flagged & live)
        self._flagged = verdict.over  # finished pods fall out: their lanes are released
        return verdict.violations

    async def apply(self, kube: KubeApi | None, violations: Sequence[Violation]) -> None:
        for v in violations:
            self._stats.violation(v.namespace, v.pod, v.lane, v.action.value)
            log.warning("%s", v.message)
            if kube is None:
                continue  # no API server yet: the metric still records it
            try:
                await kube.create_event(EventSpec(v.namespace, v.pod, v.uid, REASON_OVER_LANE, v.message))
                if v.action is Action.EVICT:
                    await kube.evict_pod(v.namespace, v.pod)
                    await kube.create_event(
                        EventSpec(v.namespace, v.pod, v.uid, REASON_EVICTED, f"evicted by gpulane-agent: {v.message}")
                    )
            except KubeError as exc:
                log.warning("could not act on %s/%s: %s", v.namespace, v.pod, exc)
                # forget it so the next tick tries again
                self._flagged = self._flagged - {v.uid}
