"""The KubeApi port: the few API calls the agent makes, as a Protocol over plain frozen values.

Decisions (which pod an Allocate is for, which pod is over its lane) are taken on ``PodView`` values,
so they are tested without a cluster; ``kube.client`` implements the port with kubernetes_asyncio and
``kube.memory`` in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

GROUP = "gpulane.dev"
VERSION = "v1alpha1"
GPUNODE_PLURAL = "gpunodes"


class KubeError(RuntimeError):
    """An API call failed; ``status`` is the HTTP status when there was one (0 for transport errors)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PodView:
    """What the agent reads from a Pod."""

    namespace: str
    name: str
    uid: str
    node_name: str = ""
    phase: str = "Pending"
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    # container runtime id (without the "containerd://" scheme) -> container name, for attribution
    container_ids: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    deleting: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def finished(self) -> bool:
        return self.phase in {"Succeeded", "Failed"}


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A core/v1 Event about a pod."""

    namespace: str
    pod_name: str
    pod_uid: str
    reason: str
    message: str
    type: str = "Warning"


class KubeApi(Protocol):
    async def list_node_pods(self, node_name: str) -> list[PodView]:
        """gpulane-managed pods bound to (or annotated for) ``node_name``."""
        ...

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None: ...

    async def evict_pod(self, namespace: str, name: str) -> None:
        """Through the Eviction API (policy/v1), so PodDisruptionBudgets are honoured."""
        ...

    async def create_event(self, event: EventSpec) -> None: ...

    async def apply_gpunode(self, name: str, labels: Mapping[str, str], status: Mapping[str, Any]) -> None:
        """Create the cluster-scoped GPUNode if missing, then replace its status (status subresource)."""
        ...

    async def close(self) -> None: ...
