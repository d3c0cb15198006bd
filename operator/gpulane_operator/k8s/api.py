"""The Kubernetes API port (a Protocol) and its kubernetes_asyncio implementation.

Everything above this layer sees raw JSON dicts and :class:`ApiError`; responses are not turned into
client model objects (that costs milliseconds per pod at 500 jobs and hides fields). Tests replace
the whole port with an in-memory fake.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from gpulane_operator.names import GROUP, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"
DRA_GROUP, DRA_VERSION, CLAIMS = "resource.k8s.io", "v1", "resourceclaims"


class ApiError(Exception):
    """An API call that failed; ``status`` is the HTTP status (0 when no response came back)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def definitive(self) -> bool:
        """The request was certainly not applied (a 4xx other than a timeout-like 408/429)."""
        return 400 <= self.status < 500 and self.status not in (408, 429)


async def create_or_read(
    create: Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]],
    read: Callable[[str, str], Awaitable[dict[str, Any]]],
    body: Mapping[str, Any],
) -> tuple[dict[str, Any], bool]:
    """(the object as stored, whether this call created it): names are deterministic, so a create after
    a crash meets a 409 and reads what is there."""
    meta = body["metadata"]
    try:
        return await create(meta["namespace"], body), True
    except ApiError as exc:
        if not exc.conflict:
            raise
    return await read(meta["namespace"], meta["name"]), False


async def deleted(call: Awaitable[None]) -> bool:
    """Await a delete; False when the object was already gone (deleting twice is fine)."""
    try:
        await call
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True


class KubeApi(Protocol):
    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def delete_pod(self, namespace: str, name: str, grace_period_s: int | None = None) -> None: ...

    async def bind_pod(self, namespace: str, name: str, node: str) -> None: ...

    async def patch_job_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None: ...

    async def read_peering(self, name: str, namespace: str | None) -> dict[str, Any]: ...

    async def create_claim(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def read_claim(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def patch_claim_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete_claim(self, namespace: str, name: str) -> None: ...

    async def close(self) -> None: ...


# What aiohttp's trust_env reads: proxies from these variables, credentials from ~/.netrc (or $NETRC).
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "ws_proxy", "wss_proxy")


def _environment_matters(env: Mapping[str, str]) -> bool:
    """Whether a proxy variable or a netrc file could change how the apiserver is reached."""
    if any(env.get(name) or env.get(name.upper()) for name in PROXY_VARIABLES):
        return True
    netrc = env.get("NETRC") or (os.path.join(env["HOME"], ".netrc") if env.get("HOME") else "")
    return bool(netrc) and os.path.exists(netrc)


async def _distrust_environment(api_client: Any) -> None:
    """kubernetes_asyncio's session trusts the environment, so aiohttp looks up ~/.netrc and the proxy
    variables in a worker thread for every request: two thread hops per call, a tenth of the operator's
    CPU at 100 binds/s. With neither present the lookups always find nothing, so the same connector (TLS
    settings, pool) gets a session that skips them."""
    import aiohttp

    rest = api_client.rest_client
    old = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(connector=old.connector, trust_env=False, read_bufsize=2**21)
    old.detach()  # the new session owns the connector now; the old one closes nothing
    await old.close()


class AsyncKubeApi:
    """KubeApi over kubernetes_asyncio; one instance per operator process, kept in kopf's memo."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes_asyncio import client

        self._client = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    @staticmethod
    async def connect(kubeconfig: str | None = None) -> AsyncKubeApi:
        """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
        from kubernetes_asyncio import client, config

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(config_file=kubeconfig)
        api_client = client.ApiClient()
        if not _environment_matters(os.environ):
            await _distrust_environment(api_client)
        return AsyncKubeApi(api_client)

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            response = await method(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise ApiError(int(exc.status or 0), _message(exc.body) or str(exc.reason)) from exc
        except (OSError, TimeoutError) as exc:
            raise ApiError(0, f"no response: {exc}") from exc
        try:
            data = await response.read()
        finally:
            response.release()
        # Without preloading, kubernetes_asyncio returns error responses instead of raising ApiException:
        # a 404, 409 or 422 arrives here as a Status body with the HTTP status on the response.
        if not 200 <= response.status <= 299:
            raise ApiError(int(response.status), _message(data) or str(response.reason))
        return dict(json.loads(data)) if data else {}

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call(self._core.create_namespaced_pod, namespace, dict(body))

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._call(self._core.read_namespaced_pod, name, namespace)

    async def delete_pod(self, namespace: str, name: str, grace_period_s: int | None = None) -> None:
        if grace_period_s is None:
            await self._call(self._core.delete_namespaced_pod, name, namespace)
        else:
            await self._call(self._core.delete_namespaced_pod, name, namespace, grace_period_seconds=grace_period_s)

    async def bind_pod(self, namespace: str, name: str, node: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        await self._call(self._core.create_namespaced_pod_binding, name, namespace, body)

    async def patch_job_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        await self._call(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            dict(patch),
            _content_type=MERGE_PATCH,
        )

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
        await self._call(self._core.create_namespaced_event, namespace, dict(body))

    async def read_peering(self, name: str, namespace: str | None) -> dict[str, Any]:
        """kopf's ClusterKopfPeering (namespace None) or KopfPeering."""
        if namespace is None:
            return await self._call(self._custom.get_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", name)
        return await self._call(
            self._custom.get_namespaced_custom_object, "kopf.dev", "v1", namespace, "kopfpeerings", name
        )

    # ResourceClaims (resource.k8s.io/v1) through the generic client: the same JSON either way, and no
    # dependency on the client version having the DRA models.
    async def create_claim(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call(
            self._custom.create_namespaced_custom_object, DRA_GROUP, DRA_VERSION, namespace, CLAIMS, dict(body)
        )

    async def read_claim(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._call(
            self._custom.get_namespaced_custom_object, DRA_GROUP, DRA_VERSION, namespace, CLAIMS, name
        )

    async def patch_claim_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call(
            self._custom.patch_namespaced_custom_object_status, DRA_GROUP, DRA_VERSION, namespace, CLAIMS, name,
            dict(patch), _content_type=MERGE_PATCH,
        )  # fmt: skip

    async def delete_claim(self, namespace: str, name: str) -> None:
        await self._call(self._custom.delete_namespaced_custom_object, DRA_GROUP, DRA_VERSION, namespace, CLAIMS, name)

    async def close(self) -> None:
        await self._client.close()


def _message(body: Any) -> str:
    """The apiserver's Status.message, which names the field and the reason."""
    if not body:
        return ""
    try:
        return str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        return str(body)
