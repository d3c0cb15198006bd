"""Create, adopt, allocate and delete a DRA pod's ResourceClaim; no decisions.

Claim names are the pod's, so "create" after a crash meets a 409 and reads the claim that is there;
the caller decides from what it says (its owner, its allocation), never from what it meant to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpulane_operator.k8s import api as k8s_api
from gpulane_operator.k8s.api import KubeApi


async def create_or_read(api: KubeApi, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the claim as stored, whether this call created it)."""
    return await k8s_api.create_or_read(api.create_claim, api.read_claim, body)


async def write_status(api: KubeApi, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
    return await api.patch_claim_status(namespace, name, patch)


async def delete_if_present(api: KubeApi, namespace: str, name: str) -> bool:
    """Delete a claim; False when it was already gone (the garbage collector may have been first)."""
    return await k8s_api.deleted(api.delete_claim(namespace, name))
