"""Bind a pod to its node through the Binding subresource, as a scheduler does.

Binding twice to the same node is success (a retried cycle); a pod already bound elsewhere is an
error the caller must not paper over.
"""

from __future__ import annotations

from gpulane_operator.k8s.api import ApiError, KubeApi


class BindConflict(Exception):
    """The pod is bound to another node than the one its assignment names."""


async def bind_if_unbound(api: KubeApi, namespace: str, name: str, node: str, bound_node: str = "") -> bool:
    """Bind unless already bound; True when this call bound it."""
    if bound_node:
        if bound_node != node:
            raise BindConflict(f"pod {namespace}/{name} is bound to {bound_node}, its assignment says {node}")
        return False
    try:
        await api.bind_pod(namespace, name, node)
    except ApiError as exc:
        if not exc.conflict:
            raise
        pod = await api.read_pod(namespace, name)
        actual = str((pod.get("spec") or {}).get("nodeName") or "")
        if actual != node:
            raise BindConflict(f"pod {namespace}/{name} is bound to {actual or 'nothing'}, wanted {node}") from exc
        return False
    return True
