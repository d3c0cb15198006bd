"""InMemoryKube: the KubeApi port over dictionaries, for unit tests and for running without a cluster.

It records what the agent did (annotations, evictions, events, GPUNode statuses) so tests assert on
effects, and it can be told to fail the next calls to exercise the error paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gpulane_core.podcontract import NODE

from gpulane_agent.kube.api import EventSpec, KubeError, PodView


class InMemoryKube:
    def __init__(self, pods: list[PodView] | None = None) -> None:
        self.pods: dict[str, PodView] = {p.key: p for p in pods or []}
        self.evicted: list[str] = []
        self.events: list[EventSpec] = []
        self.gpunodes: dict[str, dict[str, Any]] = {}
        self.fail_with: KubeError | None = None

    def add_pod(self, pod: PodView) -> None:
        self.pods[pod.key] = pod

    def finish_pod(self, key: str, phase: str = "Succeeded") -> None:
        self.pods[key] = dataclasses.replace(self.pods[key], phase=phase)

    async def list_node_pods(self, node_name: str) -> list[PodView]:
        self._maybe_fail()
        return [
            p
            for p in self.pods.values()
            if p.node_name == node_name or p.annotations.get(NODE) == node_name
        ]

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self._maybe_fail()
        key = f"{namespace}/{name}"
        if key not in self.pods:
            raise KubeError(f"pods {key!r} not found", status=404)
        pod = self.pods[key]
        self.pods[key] = dataclasses.replace(pod, annotations={**pod.annotations, **annotations})

    async def evict_pod(self, namespace: str, name: str) -> None:
        self._maybe_fail()
        key = f"{namespace}/{name}"
        if key not in self.pods:
            raise KubeError(f"pods {key!r} not found", status=404)
        self.evicted.append(key)
        del self.pods[key]

    async def create_event(self, event: EventSpec) -> None:
        self._maybe_fail()
        self.events.append(event)

    async def apply_gpunode(self, name: str, labels: Mapping[str, str], status: Mapping[str, Any]) -> None:
        self._maybe_fail()
        self.gpunodes[name] = {"metadata": {"name": name, "labels": dict(labels)}, "status": dict(status)}

    async def close(self) -> None:
        return None

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with
