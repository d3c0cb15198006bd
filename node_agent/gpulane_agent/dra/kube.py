"""The API calls of the DRA driver (ResourceClaims read, the node's ResourceSlice written), as plain dicts.

``resource.k8s.io/v1`` is reached through kubernetes_asyncio's CustomObjectsApi, which builds the same
``/apis/<group>/<version>/...`` paths for built-in groups: it keeps the objects as the apiserver sends
them, whereas the typed models of a client generated for an older Kubernetes would silently drop the
fields it does not know (``consumedCapacity``, ``shareID``, ``allowMultipleAllocations``...). Every
failure becomes ``KubeError`` with the HTTP status, as in ``gpulane_agent.kube.client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from gpulane_agent.kube.api import KubeError

GROUP = "resource.k8s.io"
VERSION = "v1"


class DraKube(Protocol):
    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The ResourceClaim, or None when it does not exist."""
        ...

    async def get_slice(self, name: str) -> Mapping[str, Any] | None: ...

    async def create_slice(self, body: Mapping[str, Any]) -> None: ...

    async def replace_slice(self, name: str, body: Mapping[str, Any]) -> None:
        """Replace with ``metadata.resourceVersion`` from the body: a concurrent writer gets a 409."""
        ...

    async def delete_slice(self, name: str) -> None:
        """Delete; a slice that is already gone is not an error."""
        ...

    async def node_uid(self, name: str) -> str:
        """The Node's uid, "" when there is no such Node (then the slice gets no owner)."""
        ...


class AsyncDraKube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return await self._get(self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "resourceclaims", name))

    async def get_slice(self, name: str) -> Mapping[str, Any] | None:
        return await self._get(self._custom.get_cluster_custom_object(GROUP, VERSION, "resourceslices", name))

    async def create_slice(self, body: Mapping[str, Any]) -> None:
        await _call(self._custom.create_cluster_custom_object(GROUP, VERSION, "resourceslices", dict(body)))

    async def replace_slice(self, name: str, body: Mapping[str, Any]) -> None:
        await _call(self._custom.replace_cluster_custom_object(GROUP, VERSION, "resourceslices", name, dict(body)))

    async def delete_slice(self, name: str) -> None:
        try:
            await _call(self._custom.delete_cluster_custom_object(GROUP, VERSION, "resourceslices", name))
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def node_uid(self, name: str) -> str:
        try:
            node = await _call(self._core.read_node(name))
        except KubeError as exc:
            if exc.status == 404:
                return ""
            raise
        return str(node.metadata.uid or "")

    async def _get(self, awaitable: Any) -> Mapping[str, Any] | None:
        try:
            result = await _call(awaitable)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(result)


async def _call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except ApiException as exc:
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
        raise KubeError(f"API error {exc.status} {exc.reason}: {body}", status=int(exc.status or 0)) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise KubeError(f"API server unreachable: {exc}") from exc
