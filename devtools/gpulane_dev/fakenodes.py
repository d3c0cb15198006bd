"""Fake GPU nodes: Node objects kwok keeps Ready, advertising GPUs the way gpulane's agent would.

No kubelet or device plugin runs locally, so the node's status is written at creation with the
extended resources a real gpulane node would advertise (`gpulane.dev/gpu-memory` in memory units per
docs/contracts.md, plus `nvidia.com/gpu`) and the GPU-feature-discovery labels the operator reads.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gpulane_dev.controlplane import KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE

GPU_MEMORY_RESOURCE = "gpulane.dev/gpu-memory"
NVIDIA_GPU_RESOURCE = "nvidia.com/gpu"
FAKE_GPU_LABEL = "gpulane.dev/fake-gpu"
DEFAULT_MEMORY_UNIT_MIB = 256


class FakeNodeError(ValueError):
    """A fake node that cannot be described; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class FakeGpuNode:
    """One fake node: `gpus` GPUs of `gpu_memory_mib` each, plus plain cpu/memory/pods capacity."""

    name: str
    gpus: int = 4
    gpu_memory_mib: int = 16384
    # None: "Fake-GPU-<GiB>G", the model name the node agent's fake backend reports by default.
    product: str | None = None
    memory_unit_mib: int = DEFAULT_MEMORY_UNIT_MIB
    cpu: str = "32"
    memory: str = "256Gi"
    pods: str = "110"

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 253:
            raise FakeNodeError(f"name: {self.name!r} must be 1..253 characters")
        if self.gpus < 0:
            raise FakeNodeError(f"gpus: {self.gpus} must be >= 0")
        if self.gpu_memory_mib <= 0:
            raise FakeNodeError(f"gpu_memory_mib: {self.gpu_memory_mib} must be > 0")
        if self.memory_unit_mib <= 0 or self.gpu_memory_mib % self.memory_unit_mib:
            raise FakeNodeError(
                f"gpu_memory_mib: {self.gpu_memory_mib} must be a multiple of memory_unit_mib {self.memory_unit_mib}"
            )

    @property
    def gpu_product(self) -> str:
        return self.product or f"Fake-GPU-{self.gpu_memory_mib // 1024}G"

    @property
    def memory_units(self) -> int:
        """Devices of `gpulane.dev/gpu-memory` the node advertises: one per memory unit per GPU."""
        return self.gpus * (self.gpu_memory_mib // self.memory_unit_mib)

    def manifest(self) -> dict[str, Any]:
        """The Node object, status included (the apiserver keeps status given at creation)."""
        resources = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            NVIDIA_GPU_RESOURCE: str(self.gpus),
            GPU_MEMORY_RESOURCE: str(self.memory_units),
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "annotations": {KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE},
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    FAKE_GPU_LABEL: "true",
                    "nvidia.com/gpu.product": self.gpu_product,
                    "nvidia.com/gpu.memory": str(self.gpu_memory_mib),
                    "nvidia.com/gpu.count": str(self.gpus),
                },
            },
            "status": {"capacity": dict(resources), "allocatable": dict(resources)},
        }


def fleet(count: int, prefix: str, *, gpus: int = 4, gpu_memory_mib: int = 16384) -> list[FakeGpuNode]:
    """`count` identical nodes named `<prefix>-0` .. `<prefix>-<count-1>`."""
    if count < 1:
        raise FakeNodeError(f"count: {count} must be >= 1")
    return [FakeGpuNode(f"{prefix}-{i}", gpus=gpus, gpu_memory_mib=gpu_memory_mib) for i in range(count)]


def create(api: client.ApiClient, nodes: Sequence[FakeGpuNode]) -> list[str]:
    """Create the nodes (an existing node of the same name is replaced); return their names.

    Plain dict bodies are passed on purpose (the client validates them into its models at runtime).
    """
    core = client.CoreV1Api(api)
    for node in nodes:
        try:
            core.create_node(cast(Any, node.manifest()))
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.delete_node(node.name)
            _wait_gone(core, node.name, timeout=30.0)
            core.create_node(cast(Any, node.manifest()))
    return [n.name for n in nodes]


def node_ready(node: Any) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def wait_ready(api: client.ApiClient, names: Sequence[str], *, timeout: float = 60.0) -> float:
    """Wait until kwok has marked every node Ready; return the seconds waited."""
    core = client.CoreV1Api(api)
    started = time.monotonic()
    pending = list(names)
    while pending:
        pending = [n for n in pending if not node_ready(core.read_node(n))]
        if not pending:
            break
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"nodes not Ready after {timeout:.0f}s (is kwok running?): {pending}")
        time.sleep(0.2)
    return time.monotonic() - started


def delete(api: client.ApiClient, names: Sequence[str]) -> None:
    """Delete the nodes; ones already gone are fine."""
    core = client.CoreV1Api(api)
    for name in names:
        try:
            core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _wait_gone(core: client.CoreV1Api, name: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_node(name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.2)
    raise TimeoutError(f"node {name} still exists {timeout:.0f}s after deletion")
