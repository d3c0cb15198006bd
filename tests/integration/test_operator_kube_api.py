"""The operator's KubeApi against a real kube-apiserver: errors arrive as ApiError with the server's message.

Everything above the k8s layer decides on ApiError's status (404 gone, 409 exists, 4xx definitive). The
unit tests use an in-memory fake that raises them; this checks the real client does too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gpulane_operator.k8s.api import ApiError, AsyncKubeApi

pytestmark = pytest.mark.integration


def pod(name: str, image: str = "x") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": image}]}}  # fmt: skip


async def scenario(kubeconfig: Path, namespace: str) -> None:
    api = await AsyncKubeApi.connect(str(kubeconfig))
    try:
        created = await api.create_pod(namespace, pod("p"))
        assert created["metadata"]["name"] == "p" and (await api.read_pod(namespace, "p"))["kind"] == "Pod"
        with pytest.raises(ApiError) as exists:
            await api.create_pod(namespace, pod("p"))
        assert exists.value.status == 409 and "already exists" in exists.value.message
        with pytest.raises(ApiError) as invalid:
            await api.create_pod(namespace, pod("q", image=""))
        assert invalid.value.status == 422 and "spec.containers[0].image" in invalid.value.message
        await api.bind_pod(namespace, "p", "some-node")
        with pytest.raises(ApiError) as bound:
            await api.bind_pod(namespace, "p", "other-node")
        assert bound.value.status == 409
        await api.delete_pod(namespace, "p", grace_period_s=0)
        with pytest.raises(ApiError) as gone:
            await api.read_pod(namespace, "p")
        assert gone.value.status == 404
        with pytest.raises(ApiError) as no_peering:
            await api.read_peering("gpulane", namespace)
        assert no_peering.value.status == 404 and "not found" in no_peering.value.message
        with pytest.raises(ApiError) as no_job:
            await api.patch_job_status(namespace, "missing", {"status": {"phase": "Pending"}})
        assert no_job.value.status == 404
    finally:
        await api.close()


def test_api_errors_are_raised_with_the_apiserver_message(crds: list[str], kubeconfig: Path, namespace: str) -> None:
    asyncio.run(scenario(kubeconfig, namespace))
