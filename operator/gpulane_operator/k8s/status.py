"""Patch a GPUShareJob's status subresource (merge patch; the builders live in statuses.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpulane_operator.k8s.api import ApiError, KubeApi


async def patch(api: KubeApi, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
    """False when the job is gone (deleted meanwhile); other errors propagate."""
    try:
        await api.patch_job_status(namespace, name, body)
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True
