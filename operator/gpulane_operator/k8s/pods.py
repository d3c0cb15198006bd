"""Create, adopt and delete a job's pod idempotently.

Pod names are deterministic, so "create" after a crash meets a 409 and adopts the pod that is there;
the caller then decides with the pod's own annotations, never with what it meant to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpulane_operator.k8s import api as k8s_api
from gpulane_operator.k8s.api import KubeApi


async def create_or_adopt(api: KubeApi, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the pod as stored, whether this call created it)."""
    return await k8s_api.create_or_read(api.create_pod, api.read_pod, body)


async def delete_if_present(api: KubeApi, namespace: str, name: str, *, force: bool = False) -> bool:
    """Delete a pod; False when it was already gone (deleting twice is fine).

    ``force`` (grace period 0) is only for pods whose node is gone: no kubelet will ever confirm
    their end, as the pod garbage collector does for orphaned pods.
    """
    return await k8s_api.deleted(api.delete_pod(namespace, name, 0 if force else None))
