"""Builders for GPUShareJob/node bodies and an in-memory KubeApi for the operator's unit tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from gpulane_operator.k8s.api import ApiError


def job_body(
    name: str,
    persistent: str | int = "2Gi",
    ephemeral: str | int = "4Gi",
    *,
    namespace: str = "ns",
    gpus: int = 1,
    cls: str = "guaranteed",
    created: str = "2026-01-01T00:00:00Z",
    status: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "gpulane.dev/v1alpha1",
        "kind": "GPUShareJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {
            "gpus": gpus,
            "memory": {"persistent": persistent, "ephemeral": ephemeral},
            "class": cls,
            "template": {"metadata": {"labels": {"team": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
        "status": dict(status or {}),
    }


def node_body(
    name: str, gpus: int = 2, memory_mib: int = 16384, *, ready: bool = True, device_units: int | None = None
) -> dict[str, Any]:
    """A GPU node; ``device_units``: the allocatable gpulane.dev/gpu-memory its device plugin advertised."""
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if device_units is not None:
        status["allocatable"] = {"gpulane.dev/gpu-memory": str(device_units), "cpu": "2"}
    return {
        "metadata": {
            "name": name,
            "labels": {"nvidia.com/gpu.count": str(gpus), "nvidia.com/gpu.memory": str(memory_mib), "pool": "a"},
        },
        "status": status,
    }


def job_pod_body(phase: str = "Running", name: str = "a", namespace: str = "ns") -> dict[str, Any]:
    """The gpulane pod of job ``name`` on n1, in ``phase``, with no assignment annotations."""
    return {
        "metadata": {
            "name": f"{name}-gpulane", "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "gpulane", "gpulane.dev/job": name},
            "annotations": {}, "ownerReferences": [{"uid": f"uid-{name}"}],
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase},
    }  # fmt: skip


class FakeKubeApi:
    """Pods, bindings, status patches and events kept in dicts; ``fail`` injects errors per call."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.binds: list[tuple[str, str, str]] = []
        self.deleted: list[tuple[str, str, int | None]] = []
        self.fail: dict[str, ApiError] = {}
        self.peerings: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.claims: dict[tuple[str, str], dict[str, Any]] = {}
        self.claim_patches: list[tuple[str, str, dict[str, Any]]] = []
        self.calls: list[str] = []  # every call that reaches the API, in order
        self._uids = 0

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail:
            raise self.fail.pop(op)

    def _uid(self) -> str:
        self._uids += 1
        return f"00000000-0000-4000-8000-{self._uids:012d}"

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("create_pod")
        self._maybe_fail("create_pod")
        key = (namespace, body["metadata"]["name"])
        if key in self.pods:
            raise ApiError(409, "already exists")
        self.pods[key] = copy.deepcopy(dict(body))
        self.pods[key]["metadata"].setdefault("uid", self._uid())
        return copy.deepcopy(self.pods[key])

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) not in self.pods:
            raise ApiError(404, "not found")
        return copy.deepcopy(self.pods[(namespace, name)])

    async def delete_pod(self, namespace: str, name: str, grace_period_s: int | None = None) -> None:
        self.calls.append("delete_pod")
        self._maybe_fail("delete_pod")
        if self.pods.pop((namespace, name), None) is None:
            raise ApiError(404, "not found")
        self.deleted.append((namespace, name, grace_period_s))

    async def bind_pod(self, namespace: str, name: str, node: str) -> None:
        self.calls.append("bind_pod")
        self._maybe_fail("bind_pod")
        pod = self.pods[(namespace, name)]
        if pod["spec"].get("nodeName"):
            raise ApiError(409, "already assigned")
        pod["spec"]["nodeName"] = node
        self.binds.append((namespace, name, node))

    async def patch_job_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self._maybe_fail("patch_job_status")
        self.patches.append((namespace, name, copy.deepcopy(dict(patch))))

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
        self.events.append(dict(body))

    async def read_peering(self, name: str, namespace: str | None) -> dict[str, Any]:
        self._maybe_fail("read_peering")
        if (name, namespace) not in self.peerings:
            raise ApiError(404, f"kopfpeerings.kopf.dev {name!r} not found")
        return copy.deepcopy(self.peerings[(name, namespace)])

    async def create_claim(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("create_claim")
        self._maybe_fail("create_claim")
        key = (namespace, body["metadata"]["name"])
        if key in self.claims:
            raise ApiError(409, "already exists")
        self.claims[key] = copy.deepcopy(dict(body))
        self.claims[key]["metadata"].setdefault("uid", self._uid())
        return copy.deepcopy(self.claims[key])

    async def read_claim(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append("read_claim")
        if (namespace, name) not in self.claims:
            raise ApiError(404, "not found")
        return copy.deepcopy(self.claims[(namespace, name)])

    async def patch_claim_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("patch_claim_status")
        self._maybe_fail("patch_claim_status")
        claim = self.claims[(namespace, name)]
        status = claim.setdefault("status", {})
        if "allocation" in patch["status"] and status.get("allocation") not in (None, patch["status"]["allocation"]):
            raise ApiError(422, "status.allocation: field is immutable")
        status.update(copy.deepcopy(dict(patch["status"])))
        self.claim_patches.append((namespace, name, copy.deepcopy(dict(patch))))
        return copy.deepcopy(claim)

    async def delete_claim(self, namespace: str, name: str) -> None:
        self.calls.append("delete_claim")
        if self.claims.pop((namespace, name), None) is None:
            raise ApiError(404, "not found")

    async def close(self) -> None:
        return None

    def last_status(self, name: str) -> dict[str, Any]:
        for _, n, patch in reversed(self.patches):
            if n == name:
                return dict(patch["status"])
        raise KeyError(name)
