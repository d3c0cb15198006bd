"""The DRA kubelet plugin over real unix sockets, against the real kube-apiserver (v1.37, resource.k8s.io/v1).

``PluginWatcher`` plays the kubelet's side: it finds the registration socket in ``plugins_registry/``,
asks ``GetInfo``, dials the endpoint it names with the v1 (and v1beta1) DRAPlugin stubs, and reports back
through ``NotifyRegistrationStatus``, as the kubelet's plugin watcher and DRA manager do. ResourceClaims
are created in the apiserver and their ``status.allocation`` written as the gpulane operator will
(device, consumedCapacity, shareID), so the plugin reads real, validated objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from gpulane_agent.agent import Agent
from gpulane_agent.dra import cdi
from gpulane_agent.dra._proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    registration_v1_pb2,
    registration_v1_pb2_grpc,
)
from gpulane_agent.dra.plugin import DraDriver, DriverContext
from gpulane_agent.dra.publisher import SlicePublisher
from gpulane_agent.dra.runner import DraPluginRunner, SocketPaths
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthBoard, watch_health
from gpulane_agent.kube.client import AsyncDraKube, connect
from gpulane_agent.settings import load_config
from gpulane_agent.stats import AgentStats
from gpulane_dev.controlplane import ControlPlane
from gpulane_dev.kubeclient import connected
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

GROUP, VERSION = "resource.k8s.io", "v1"
DRIVER = "gpu.gpulane.dev"
SOCKET = "/var/run/gpulane/coordinator.sock"
WAIT_S = 15.0


class PluginWatcher:
    """The kubelet side of plugin registration, then a client of the endpoint it was given."""

    def __init__(self, registry: Path) -> None:
        self.registry = registry

    async def register(self) -> tuple[registration_v1_pb2.PluginInfo, str]:
        """Wait for the socket, GetInfo, dial the endpoint with an empty v1 call, notify; -> (info, error)."""
        sock = await _wait_for(lambda: next(iter(self.registry.glob("*.sock")), None))
        async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
            reg = registration_v1_pb2_grpc.RegistrationStub(channel)
            info = await reg.GetInfo(registration_v1_pb2.InfoRequest(), timeout=5)
            error = ""
            if info.type != "DRAPlugin" or "v1.DRAPlugin" not in info.supported_versions:
                error = f"unsupported plugin {info.type} {list(info.supported_versions)}"
            else:
                async with grpc.aio.insecure_channel(f"unix://{info.endpoint}") as plugin:
                    await dra_v1_pb2_grpc.DRAPluginStub(plugin).NodePrepareResources(
                        dra_v1_pb2.NodePrepareResourcesRequest(), timeout=5
                    )
            await reg.NotifyRegistrationStatus(
                registration_v1_pb2.RegistrationStatus(plugin_registered=not error, error=error), timeout=5
            )
        return info, error


async def _wait_for(probe: Any) -> Any:
    for _ in range(int(WAIT_S / 0.02)):
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@dataclass
class Setup:
    node: str
    root: Path
    cdi_dir: Path
    backend: FakeBackend
    board: HealthBoard
    runner: DraPluginRunner
    publisher: SlicePublisher
    watcher: PluginWatcher

    def v1(self, channel: grpc.aio.Channel) -> dra_v1_pb2_grpc.DRAPluginStub:
        return dra_v1_pb2_grpc.DRAPluginStub(channel)

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"unix://{self.runner.paths.plugin}")


@pytest.fixture
async def dra(control_plane: ControlPlane) -> AsyncIterator[Setup]:
    # Short paths: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    root = Path(tempfile.mkdtemp(prefix="gl-dra-", dir="/tmp"))
    node = f"dra-{secrets.token_hex(3)}"
    backend, board = FakeBackend.default(node), HealthBoard()
    kube = await connect(str(control_plane.kubeconfig))
    dra_kube = AsyncDraKube(kube.api_client)
    driver = DraDriver(DriverContext(node, root / "cdi", SOCKET), backend, lambda: dra_kube)
    runner = DraPluginRunner(driver, SocketPaths.under(str(root / "plugins"), str(root / "registry")), poll_s=0.05)
    publisher = SlicePublisher(node, backend, board, lambda: dra_kube, unit_mib=256, resync_s=30)
    tasks = [asyncio.create_task(runner.run()), asyncio.create_task(watch_health(backend, board, AgentStats(), 0.05))]
    try:
        yield Setup(node, root, root / "cdi", backend, board, runner, publisher, PluginWatcher(root / "registry"))
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await publisher.delete()
        await kube.close()
        shutil.rmtree(root, ignore_errors=True)


def _custom(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture(scope="module")
def device_class(control_plane: ControlPlane) -> Iterator[None]:
    """The chart's DeviceClass, for the duration of this module (the chart test creates and deletes its own)."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DeviceClass", "metadata": {"name": DRIVER},
        "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]},
    }  # fmt: skip
    with connected(control_plane.kubeconfig) as api:
        _custom(api).create_cluster_custom_object(GROUP, VERSION, "deviceclasses", body)
        try:
            yield
        finally:
            _custom(api).delete_cluster_custom_object(GROUP, VERSION, "deviceclasses", DRIVER)


def allocated_claim(
    kube_api: client.ApiClient, namespace: str, name: str, node: str, driver: str = DRIVER, memory: str = "2Gi"
) -> tuple[str, str]:
    """Create a claim for ``memory`` of a gpulane GPU and allocate it gpu-0 as the operator will; -> (uid, shareID)."""
    custom = _custom(kube_api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourceClaim", "metadata": {"name": name},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
            "deviceClassName": DRIVER, "capacity": {"requests": {"memory": memory}}}}]}},
    }  # fmt: skip
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "resourceclaims", body)
    share = str(uuid.uuid4())
    allocation = {
        "devices": {"results": [{"request": "gpu", "driver": driver, "pool": node, "device": "gpu-0",
                                 "consumedCapacity": {"memory": memory}, "shareID": share}]},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node]}]}]},
    }  # fmt: skip
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "resourceclaims", name, {"status": {"allocation": allocation}}
    )
    return str(created["metadata"]["uid"]), share


def read_slice(kube_api: client.ApiClient, name: str) -> dict[str, Any] | None:
    try:
        return dict(_custom(kube_api).get_cluster_custom_object(GROUP, VERSION, "resourceslices", name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def test_registers_like_the_plugin_watcher_expects_and_reserves_a_deleted_socket(dra: Setup) -> None:
    info, error = await dra.watcher.register()
    assert error == ""
    assert (info.type, info.name, info.endpoint) == ("DRAPlugin", DRIVER, str(dra.root / "plugins" / DRIVER / "dra.sock"))
    assert list(info.supported_versions) == ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    await asyncio.wait_for(dra.runner.registration.registered.wait(), WAIT_S)
    async with dra.channel() as channel:  # the deprecated version answers too
        empty = await dra_v1beta1_pb2_grpc.DRAPluginStub(channel).NodeUnprepareResources(
            dra_v1beta1_pb2.NodeUnprepareResourcesRequest(), timeout=5
        )
        assert dict(empty.claims) == {}

    dra.runner.paths.plugin.unlink()  # a node cleanup removes the endpoint: both sockets come back
    await _wait_for(lambda: dra.runner.serves == 2 and dra.runner.paths.registration.exists())
    _, error = await dra.watcher.register()
    assert error == ""
    await asyncio.wait_for(dra.runner.registration.registered.wait(), WAIT_S)


async def test_the_resource_slice_is_published_read_back_and_follows_gpu_health(
    dra: Setup, kube_api: client.ApiClient
) -> None:
    assert (await dra.publisher.publish()).action == "created"
    published = read_slice(kube_api, dra.publisher.name)
    assert published is not None
    spec = published["spec"]
    assert (spec["driver"], spec["nodeName"], spec["pool"]) == (
        DRIVER, dra.node, {"name": dra.node, "generation": 1, "resourceSliceCount": 1})  # fmt: skip
    assert [d["name"] for d in spec["devices"]] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    gpu0 = spec["devices"][0]
    assert gpu0["allowMultipleAllocations"] is True  # kept: the apiserver serves consumable capacity
    assert gpu0["attributes"]["uuid"] == {"string": dra.backend.gpus()[0].uuid}
    assert gpu0["attributes"]["index"] == {"int": 0}
    assert gpu0["capacity"]["memory"] == {
        "value": "16Gi", "requestPolicy": {"default": "256Mi", "validRange": {"min": "256Mi", "step": "256Mi"}}}  # fmt: skip
    assert (await dra.publisher.publish()).action == "unchanged"  # canonicalised quantities compare equal

    run = asyncio.create_task(dra.publisher.run())
    try:
        dra.backend.lose_gpu(1)  # watch_health notices; the publisher republishes on the board's change

        def republished() -> bool:
            current = read_slice(kube_api, dra.publisher.name) or {}
            return [d["name"] for d in current.get("spec", {}).get("devices", [])] == ["gpu-0", "gpu-2", "gpu-3"]

        await _wait_for(republished)
        assert (read_slice(kube_api, dra.publisher.name) or {})["spec"]["pool"]["generation"] == 2
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    await dra.publisher.delete()
    assert read_slice(kube_api, dra.publisher.name) is None
    await dra.publisher.delete()  # already gone: not an error


@pytest.mark.usefixtures("device_class")
async def test_prepare_writes_the_cdi_spec_with_the_lane_env_and_unprepare_removes_it(
    dra: Setup, kube_api: client.ApiClient, namespace: str
) -> None:
    uid, share = allocated_claim(kube_api, namespace, "trainer", dra.node)
    claim = dra_v1_pb2.Claim(namespace=namespace, uid=uid, name="trainer")
    gpu0 = dra.backend.gpus()[0].uuid
    async with dra.channel() as channel:
        for _ in range(2):  # the kubelet may call again: the same answer, the same file
            response = await dra.v1(channel).NodePrepareResources(dra_v1_pb2.NodePrepareResourcesRequest(claims=[claim]))
            result = response.claims[uid]
            assert result.error == ""
            [device] = result.devices
            assert (list(device.request_names), device.pool_name, device.device_name) == (["gpu"], dra.node, "gpu-0")
            assert list(device.cdi_device_ids) == [f"gpu.gpulane.dev/gpu={uid}"]
            assert device.share_id == share
        spec_path = dra.cdi_dir / f"gpu.gpulane.dev-{uid}.json"
        document = json.loads(spec_path.read_text())
        assert (document["cdiVersion"], document["kind"], document["devices"][0]["name"]) == ("0.6.0", "gpu.gpulane.dev/gpu", uid)
        env = cdi.env_of(document)
        assert env["CUDA_VISIBLE_DEVICES"] == env["NVIDIA_VISIBLE_DEVICES"] == env["GPULANE_GPU_UUID"] == gpu0
        assert env["GPULANE_MEMORY_LIMIT_MIB"] == "2048" and env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=2048M"
        assert env["GPULANE_LANE_ID"] == f"{gpu0}/claim-{uid}"
        assert env["GPULANE_JOB"] == f"{namespace}/trainer"
        assert env["GPULANE_COORDINATOR_SOCKET"] == SOCKET

        beta = await dra_v1beta1_pb2_grpc.DRAPluginStub(channel).NodePrepareResources(
            dra_v1beta1_pb2.NodePrepareResourcesRequest(
                claims=[dra_v1beta1_pb2.Claim(namespace=namespace, uid=uid, name="trainer")]))  # fmt: skip
        assert list(beta.claims[uid].devices[0].cdi_device_ids) == [f"gpu.gpulane.dev/gpu={uid}"]

        for _ in range(2):  # unprepare is idempotent too
            gone = await dra.v1(channel).NodeUnprepareResources(dra_v1_pb2.NodeUnprepareResourcesRequest(claims=[claim]))
            assert gone.claims[uid].error == ""
            assert not spec_path.exists()


@pytest.mark.usefixtures("device_class")
async def test_bad_claims_get_their_own_error_and_nothing_is_written_for_them(
    dra: Setup, kube_api: client.ApiClient, namespace: str
) -> None:
    good, _ = allocated_claim(kube_api, namespace, "good", dra.node)
    foreign, _ = allocated_claim(kube_api, namespace, "foreign", dra.node, driver="gpu.example.com")
    missing = str(uuid.uuid4())
    claims = [
        dra_v1_pb2.Claim(namespace=namespace, uid=good, name="good"),
        dra_v1_pb2.Claim(namespace=namespace, uid=foreign, name="foreign"),
        dra_v1_pb2.Claim(namespace=namespace, uid=missing, name="absent"),
        dra_v1_pb2.Claim(namespace=namespace, uid=missing, name="good"),  # same name, another uid
    ]
    async with dra.channel() as channel:
        response = await dra.v1(channel).NodePrepareResources(dra_v1_pb2.NodePrepareResourcesRequest(claims=claims[:3]))
        assert response.claims[good].error == "" and len(response.claims[good].devices) == 1
        assert response.claims[foreign].error == (
            f"claim {namespace}/foreign (uid {foreign}): its allocation has no device of driver gpu.gpulane.dev "
            f"(drivers: gpu.example.com)"
        )
        assert not response.claims[foreign].devices
        assert response.claims[missing].error == f"claim {namespace}/absent (uid {missing}): no such ResourceClaim"
        replaced = await dra.v1(channel).NodePrepareResources(dra_v1_pb2.NodePrepareResourcesRequest(claims=claims[3:]))
        assert replaced.claims[missing].error == (
            f"claim {namespace}/good (uid {missing}): the ResourceClaim of that name has uid {good} (it was replaced)"
        )
    assert sorted(p.name for p in dra.cdi_dir.iterdir()) == [f"gpu.gpulane.dev-{good}.json"]


async def test_the_agent_with_dra_enabled_serves_the_plugin_and_publishes_its_nodes_slice(
    control_plane: ControlPlane, kube_api: client.ApiClient, fake_gpu_nodes: Any
) -> None:
    node = fake_gpu_nodes(1)[0]
    root = Path(tempfile.mkdtemp(prefix="gl-dra-", dir="/tmp"))
    config = load_config(None, {}, {
        "node_name": node, "device_plugin.enabled": False, "coordinator.serve": False, "metrics.port": 0,
        "kubernetes.kubeconfig": str(control_plane.kubeconfig), "enforcement.proc_root": str(root),
        "dra.enabled": True, "dra.plugins_dir": str(root / "plugins"), "dra.registry_dir": str(root / "registry"),
        "dra.cdi_dir": str(root / "cdi"), "dra.socket_poll_s": 0.05,
    })  # fmt: skip

    async def factory() -> Any:
        return await connect(str(control_plane.kubeconfig))

    agent = Agent(config, FakeBackend.default(node), factory, lambda k: AsyncDraKube(k.api_client))
    run = asyncio.create_task(agent.run())
    name = f"{node}-{DRIVER}"
    try:
        info, error = await PluginWatcher(root / "registry").register()
        assert (error, info.endpoint) == ("", str(root / "plugins" / DRIVER / "dra.sock"))
        published = await _wait_for(lambda: read_slice(kube_api, name))
        owner = published["metadata"]["ownerReferences"][0]
        node_uid = client.CoreV1Api(kube_api).read_node(node).metadata.uid
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Node", node, node_uid)
        assert len(published["spec"]["devices"]) == 4
        # A restarted kubelet deletes the node's slices, then registers the plugin again: the agent
        # republishes on that registration, long before its 60 s resync.
        _custom(kube_api).delete_cluster_custom_object(GROUP, VERSION, "resourceslices", name)
        assert read_slice(kube_api, name) is None
        await PluginWatcher(root / "registry").register()
        again = await _wait_for(lambda: read_slice(kube_api, name))
        assert again["metadata"]["uid"] != published["metadata"]["uid"]
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        sockets = sorted(p.name for p in root.rglob("*.sock"))
        _custom(kube_api).delete_cluster_custom_object(GROUP, VERSION, "resourceslices", name)
        shutil.rmtree(root, ignore_errors=True)
    assert sockets == []  # the agent's shutdown removed both sockets (the slice stays: see Agent._publish_slices)


@pytest.mark.usefixtures("device_class")
async def test_the_agents_gpunode_lists_a_prepared_claim_with_its_memory_until_it_is_unprepared(
    control_plane: ControlPlane, kube_api: client.ApiClient, fake_gpu_nodes: Any, namespace: str, crds: list[str]
) -> None:
    node = fake_gpu_nodes(1)[0]
    uid, _ = allocated_claim(kube_api, namespace, "trainer", node, memory="3Gi")
    root = Path(tempfile.mkdtemp(prefix="gl-dra-", dir="/tmp"))
    config = load_config(None, {}, {
        "node_name": node, "device_plugin.enabled": False, "coordinator.serve": False, "metrics.port": 0,
        "kubernetes.kubeconfig": str(control_plane.kubeconfig), "enforcement.proc_root": str(root),
        "enforcement.interval_s": 0.1, "inventory.heartbeat_s": 3600,  # a change, not the heartbeat, publishes
        "dra.enabled": True, "dra.plugins_dir": str(root / "plugins"), "dra.registry_dir": str(root / "registry"),
        "dra.cdi_dir": str(root / "cdi"), "dra.socket_poll_s": 0.05,
    })  # fmt: skip

    async def factory() -> Any:
        return await connect(str(control_plane.kubeconfig))

    agent = Agent(config, FakeBackend.default(node), factory, lambda k: AsyncDraKube(k.api_client))
    run = asyncio.create_task(agent.run())
    custom = _custom(kube_api)

    def gpu0() -> dict[str, Any]:
        try:
            obj = custom.get_cluster_custom_object("gpulane.dev", "v1alpha1", "gpunodes", node)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return dict(((obj.get("status") or {}).get("gpus") or [{}])[0])

    claim = dra_v1_pb2.Claim(namespace=namespace, uid=uid, name="trainer")
    try:
        info, error = await PluginWatcher(root / "registry").register()
        assert error == ""
        assert (await _wait_for(gpu0))["draClaims"] == [] and gpu0()["freeMiB"] == 16384
        async with grpc.aio.insecure_channel(f"unix://{info.endpoint}") as channel:
            stub = dra_v1_pb2_grpc.DRAPluginStub(channel)
            prepared = await stub.NodePrepareResources(dra_v1_pb2.NodePrepareResourcesRequest(claims=[claim]))
            assert prepared.claims[uid].error == ""
            await _wait_for(lambda: gpu0().get("draClaims"))
            assert gpu0()["draClaims"] == [{"namespace": namespace, "name": "trainer", "uid": uid, "memoryMiB": 3072}]
            assert gpu0()["freeMiB"] == 16384 - 3072
            gone = await stub.NodeUnprepareResources(dra_v1_pb2.NodeUnprepareResourcesRequest(claims=[claim]))
            assert gone.claims[uid].error == ""
            await _wait_for(lambda: gpu0().get("draClaims") == [])
            assert gpu0()["freeMiB"] == 16384
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object("gpulane.dev", "v1alpha1", "gpunodes", node)
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, "resourceslices", f"{node}-{DRIVER}")
        shutil.rmtree(root, ignore_errors=True)
