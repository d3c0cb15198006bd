"""The agent against a real kube-apiserver: GPUNode publishing, Allocate, and eviction over the real API.

Uses the shared control-plane fixtures (etcd + kube-apiserver + kwok). The pod is created already
bound (``spec.nodeName``) to a kwok fake GPU node, with the annotations the operator would write.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from gpulane_agent.agent import Agent
from gpulane_agent.deviceplugin._proto import api_pb2, api_pb2_grpc
from gpulane_agent.enforcement.enforcer import REASON_OVER_LANE
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthState, next_health, probe_lost
from gpulane_agent.kube.client import connect
from gpulane_agent.settings import load_config
from gpulane_core import podcontract as ann
from kubernetes import client

pytestmark = pytest.mark.integration


def _pod(namespace: str, name: str, node: str, gpu_uuid: str, charge: int) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace,
            labels={"app.kubernetes.io/managed-by": "gpulane", ann.LABEL_JOB: "resnet"},
            annotations={
                ann.NODE: node, ann.GPU_INDEX: "0", ann.GPU_UUID: gpu_uuid, ann.LANE: "lane-1",
                ann.LANE_SIZE_MIB: "2048", ann.PERSISTENT_MIB: "1024", ann.EPHEMERAL_MIB: "2048",
                ann.MEMORY_LIMIT_MIB: "3072", ann.CHARGE_UNITS: str(charge), ann.CLASS: "guaranteed",
            },
        ),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="main", image="trainer:1")]),
    )


def _write_cgroup(proc_root: Path, pid: int, uid: str) -> None:
    (proc_root / str(pid)).mkdir(parents=True)
    (proc_root / str(pid) / "cgroup").write_text(f"0::/kubepods/burstable/pod{uid}/{'c' * 64}\n")


async def test_agent_publishes_gpunode_allocates_and_evicts_through_the_real_api(
    crds: list[str], kubeconfig: Path, kube_api: client.ApiClient, namespace: str,
    fake_gpu_nodes: Callable[..., list[str]], tmp_path: Path,
) -> None:
    assert "gpunodes.gpulane.dev" in crds
    node = fake_gpu_nodes(1)[0]
    backend = FakeBackend.default(node)
    gpu0 = backend.gpus()[0].uuid
    core = client.CoreV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    created = core.create_namespaced_pod(namespace, _pod(namespace, "trainer", node, gpu0, 12))

    plugin_dir = Path(tempfile.mkdtemp(prefix="gl-api-", dir="/tmp"))
    proc_root = tmp_path / "proc"
    proc_root.mkdir()
    config = load_config(None, {}, {
        "node_name": node, "enforcement.proc_root": str(proc_root), "enforcement.policy": "evict",
        "device_plugin.dir": str(plugin_dir), "device_plugin.socket_poll_s": 0.05,
    })
    kube = await connect(str(kubeconfig))
    agent = Agent(config, backend, None)
    agent.kube = kube
    try:
        # 1. inventory: the GPUNode appears with 4 GPUs and the pod's lane
        await agent.tick()
        gpunode: dict[str, Any] = custom.get_cluster_custom_object("gpulane.dev", "v1alpha1", "gpunodes", node)
        status = gpunode["status"]
        assert [g["uuid"] for g in status["gpus"]] == [g.uuid for g in backend.gpus()]
        assert {g["health"] for g in status["gpus"]} == {"Healthy"}
        assert status["memoryUnitMiB"] == 256
        assert status["gpus"][0]["lanes"] == [
            {"id": "lane-1", "sizeMiB": 2048, "usedMiB": 0, "jobs": [f"{namespace}/resnet"]}
        ]

        # 2. Allocate over the real socket, finding the pod through the real API
        await agent.plugin.step()  # serves the socket (no kubelet here: it only waits for one)
        async with grpc.aio.insecure_channel(f"unix://{agent.plugin.socket_path}") as channel:
            response = await api_pb2_grpc.DevicePluginStub(channel).Allocate(api_pb2.AllocateRequest(
                container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=[f"{gpu0}-m{k}" for k in range(12)])]))
        assert response.container_responses[0].envs["GPULANE_MEMORY_LIMIT_MIB"] == "3072"
        annotations = core.read_namespaced_pod("trainer", namespace).metadata.annotations
        assert annotations[ann.ALLOCATED] == "true"

        # 3. a restarted agent (fresh instance) reconciles the same object; GPU 1 now lost
        backend.lose_gpu(1)
        restarted = Agent(config, backend, None)
        restarted.kube = kube
        await restarted.board.update(next_health(HealthState(), [], probe_lost(backend)))  # what watch_health does
        await restarted.tick()
        status = custom.get_cluster_custom_object("gpulane.dev", "v1alpha1", "gpunodes", node)["status"]
        assert [g["health"] for g in status["gpus"]] == ["Healthy", "Unhealthy", "Healthy", "Healthy"]

        # 4. the pod's process grows past its lane: an Event, then eviction through the Eviction API
        _write_cgroup(proc_root, 4321, created.metadata.uid)
        backend.register_process(0, 4321, 4000)
        await restarted.tick()
        events = core.list_namespaced_event(namespace).items
        assert any(e.reason == REASON_OVER_LANE and "4000 MiB" in e.message for e in events)
        for _ in range(100):
            pods = core.list_namespaced_pod(namespace).items
            if not pods or pods[0].metadata.deletion_timestamp is not None:
                break
            await asyncio.sleep(0.1)
        assert not pods or pods[0].metadata.deletion_timestamp is not None
        assert restarted.stats.violations() == {(namespace, "trainer", "lane-1", "evict"): 1}
    finally:
        await agent.plugin.stop()
        await kube.close()
        with contextlib.suppress(Exception):
            custom.delete_cluster_custom_object("gpulane.dev", "v1alpha1", "gpunodes", node)
        shutil.rmtree(plugin_dir, ignore_errors=True)
