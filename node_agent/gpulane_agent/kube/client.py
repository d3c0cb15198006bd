"""KubeApi over kubernetes_asyncio: the production adapter.

Only this module talks HTTP to the API server. Every failure becomes ``KubeError`` with the HTTP status,
so callers decide retries on a plain value. Patches are JSON merge patches, set explicitly: the
generated client would otherwise pick a JSON-patch content type for custom resources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import aiohttp
from gpulane_core.podcontract import MANAGED_BY, MANAGER
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from gpulane_agent.kube.api import (
    GPUNODE_PLURAL,
    GROUP,
    VERSION,
    EventSpec,
    KubeError,
    PodView,
)

MERGE_PATCH = "application/merge-patch+json"
# Passed as **kwargs: the generated stubs accept it at runtime but do not declare it.
_MERGE: dict[str, Any] = {"_content_type": MERGE_PATCH}
COMPONENT = "gpulane-agent"


async def connect(kubeconfig: str) -> AsyncKube:
    """Load credentials (kubeconfig file, else in-cluster, else ~/.kube/config) and build the adapter."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except ConfigException:
                await config.load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError, TypeError) as exc:
        raise KubeError(f"kubernetes.kubeconfig: cannot load credentials: {exc}") from exc
    return AsyncKube(client.ApiClient(configuration))


class AsyncKube:
    def __init__(self, api_client: client.ApiClient, component_host: str = "") -> None:
        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._host = component_host

    @property
    def api_client(self) -> client.ApiClient:
        """The connection, for adapters of other API groups on the same credentials (``dra.kube``)."""
        return self._api

    async def list_node_pods(self, node_name: str) -> list[PodView]:
        body = await self._call(
            self._core.list_pod_for_all_namespaces(
                label_selector=f"{MANAGED_BY}={MANAGER}",
                field_selector=f"spec.nodeName={node_name}",
            )
        )
        return [pod_view(item) for item in body.items]

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        patch = {"metadata": {"annotations": dict(annotations)}}
        await self._call(self._core.patch_namespaced_pod(name, namespace, patch, **_MERGE))

    async def evict_pod(self, namespace: str, name: str) -> None:
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        await self._call(self._core.create_namespaced_pod_eviction(name, namespace, body))

    async def create_event(self, event: EventSpec) -> None:
        now = dt.datetime.now(dt.UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{event.pod_name}.", namespace=event.namespace),
            involved_object=client.V1ObjectReference(
                api_version="v1", kind="Pod", name=event.pod_name, namespace=event.namespace, uid=event.pod_uid
            ),
            reason=event.reason,
            message=event.message,
            type=event.type,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=client.V1EventSource(component=COMPONENT, host=self._host or None),
            reporting_component=COMPONENT,
            reporting_instance=self._host or COMPONENT,
        )
        await self._call(self._core.create_namespaced_event(event.namespace, body))

    async def apply_gpunode(self, name: str, labels: Mapping[str, str], status: Mapping[str, Any]) -> None:
        # Every heartbeat: one status patch. Only when the object is missing (404) is it created first.
        try:
            await self._patch_gpunode_status(name, status)
            return
        except KubeError as exc:
            if exc.status != 404:
                raise
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GPUNode",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {},
        }
        try:
            await self._call(self._custom.create_cluster_custom_object(GROUP, VERSION, GPUNODE_PLURAL, body))
        except KubeError as create_exc:
            if create_exc.status != 409:  # another agent incarnation created it in between
                raise
        await self._patch_gpunode_status(name, status)

    async def _patch_gpunode_status(self, name: str, status: Mapping[str, Any]) -> None:
        await self._call(
            self._custom.patch_cluster_custom_object_status(
                GROUP, VERSION, GPUNODE_PLURAL, name, {"status": dict(status)}, **_MERGE
            )
        )

    async def close(self) -> None:
        await self._api.close()

    async def _call(self, awaitable: Any) -> Any:
        return await _call(awaitable)


async def _call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except ApiException as exc:
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
        raise KubeError(f"API error {exc.status} {exc.reason}: {body}", status=int(exc.status or 0)) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise KubeError(f"API server unreachable: {exc}") from exc


_G, _V = "resource.k8s.io", "v1"  # the DRA API group, GA since Kubernetes 1.34
_CLAIMS, _SLICES = "resourceclaims", "resourceslices"


class AsyncDraKube:
    """``gpulane_agent.dra.api.DraKube`` over CustomObjectsApi, which builds the same
    ``/apis/<group>/<version>/...`` paths for built-in groups and keeps the objects as the apiserver sends
    them: the typed models of a client generated for an older Kubernetes would silently drop the fields
    they do not know (``consumedCapacity``, ``shareID``, ``allowMultipleAllocations``...)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return await self._get(self._custom.get_namespaced_custom_object(_G, _V, namespace, _CLAIMS, name))

    async def get_slice(self, name: str) -> Mapping[str, Any] | None:
        return await self._get(self._custom.get_cluster_custom_object(_G, _V, _SLICES, name))

    async def create_slice(self, body: Mapping[str, Any]) -> None:
        await _call(self._custom.create_cluster_custom_object(_G, _V, _SLICES, dict(body)))

    async def replace_slice(self, name: str, body: Mapping[str, Any]) -> None:
        await _call(self._custom.replace_cluster_custom_object(_G, _V, _SLICES, name, dict(body)))

    async def delete_slice(self, name: str) -> None:
        try:
            await _call(self._custom.delete_cluster_custom_object(_G, _V, _SLICES, name))
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


def pod_view(pod: Any) -> PodView:
    """A kubernetes_asyncio V1Pod to a PodView (pure)."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    container_ids: dict[str, str] = {}
    for cs in (status.container_statuses if status else None) or []:
        if cs.container_id:
            container_ids[cs.container_id.split("://", 1)[-1]] = cs.name
    return PodView(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid or "",
        node_name=(spec.node_name if spec else None) or "",
        phase=(status.phase if status else None) or "Pending",
        annotations=dict(meta.annotations or {}),
        labels=dict(meta.labels or {}),
        container_ids=container_ids,
        deleting=meta.deletion_timestamp is not None,
    )
