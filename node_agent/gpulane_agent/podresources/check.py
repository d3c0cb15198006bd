"""Apply side of the PodResources reading: fetch holdings each tick, report accounting mismatches once.

Optional by nature: when the socket is absent (not mounted, no kubelet) the agent runs without it and
says so once; the pure parts are in ``holdings``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from gpulane_agent.kube.api import EventSpec, KubeApi, KubeError
from gpulane_agent.lanes import PodLane
from gpulane_agent.podresources.client import PodResourcesError, list_pod_resources
from gpulane_agent.podresources.holdings import Holding, accounting_mismatches, holdings_from_list
from gpulane_agent.settings import PodResourcesConfig

log = logging.getLogger(__name__)

REASON_MISMATCH = "GPULaneAccountingMismatch"


class PodResourcesCheck:
    def __init__(self, config: PodResourcesConfig, resource_name: str) -> None:
        self._config = config
        self._resource = resource_name
        self._reported: frozenset[str] = frozenset()
        self._last_problem = ""

    async def holdings(self) -> tuple[Holding, ...]:
        """This node's containers holding gpulane units, or () when PodResources is unavailable."""
        socket = Path(self._config.socket)
        if not self._config.enabled:
            return ()
        if not socket.exists():
            self._say(f"PodResources not used: {socket} does not exist (mount /var/lib/kubelet/pod-resources)")
            return ()
        try:
            entries = await list_pod_resources(socket)
        except PodResourcesError as exc:
            self._say(str(exc))
            return ()
        if self._last_problem:
            log.info("PodResources answers again on %s", socket)
            self._last_problem = ""
        return holdings_from_list(entries, self._resource)

    async def report(self, kube: KubeApi | None, lanes: Sequence[PodLane], holdings: Sequence[Holding]) -> None:
        """An Event per pod whose units the kubelet took from another GPU; once per pod."""
        live = frozenset(pl.uid for pl in lanes)
        self._reported &= live
        for m in accounting_mismatches(lanes, holdings):
            if m.uid in self._reported:
                continue
            log.warning("%s", m.message)
            if kube is None:
                continue
            try:
                await kube.create_event(EventSpec(m.namespace, m.pod, m.uid, REASON_MISMATCH, m.message))
            except KubeError as exc:
                log.warning("cannot report the accounting mismatch of %s/%s: %s", m.namespace, m.pod, exc)
                continue
            self._reported |= {m.uid}

    def _say(self, problem: str) -> None:
        if problem != self._last_problem:
            log.info("%s", problem)
            self._last_problem = problem
