"""Create, adopt and delete a job's pod idempotently.

Pod names are deterministic, so "create" after a crash meets a 409 and adopts the pod that is there;
the caller then decides with the pod's own annotations, never with what it meant to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpulane_operator.k8s.api import ApiError, KubeApi


async def create_or_adopt(api: KubeApi, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the pod as stored, whether this call created it)."""
    meta = body["metadata"]
    try:
        return await api.create_pod(meta["namespace"], body), True
    except ApiError as exc:
        if not exc.conflict:
            raise
    return await api.read_pod(meta["namespace"], meta["name"]), False


async def delete_if_present(api: KubeApi, namespace: str, name: str, *, force: bool = False) -> bool:
    """Delete a pod; False when it was already gone (deleting twice is fine).

    ``force`` (grace period 0) is only for pods whose node is gone: no kubelet will ever confirm
    their end, as the pod garbage collector does for orphaned pods.
    """
    try:
        await api.delete_pod(namespace, name, 0 if force else None)
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True
