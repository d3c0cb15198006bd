"""The device plugin over real unix sockets against a kubelet-side peer speaking the real v1beta1 protocol.

The peer serves ``Registration`` on ``kubelet.sock`` in a temporary device-plugin directory, and, like
the kubelet, dials the plugin's endpoint from inside ``Register`` (which only works if the plugin served
its socket first), then acts as the kubelet client: ``ListAndWatch``, ``Allocate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from gpulane_agent.deviceplugin._proto import api_pb2, api_pb2_grpc
from gpulane_agent.deviceplugin.server import DevicePluginRunner, DevicePluginService, PluginContext
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthBoard, watch_health
from gpulane_agent.kube.api import PodView
from gpulane_agent.kube.memory import InMemoryKube
from gpulane_agent.settings import DevicePluginConfig
from gpulane_agent.stats import AgentStats
from gpulane_core import podcontract as ann

pytestmark = pytest.mark.integration

NODE = "node-a"
RESOURCE = "gpulane.dev/gpu-memory"
WAIT_S = 15.0
FAKE_GPU_DIR = "/run/gpulane/fake-gpu/processes"


class FakeKubelet(api_pb2_grpc.RegistrationServicer):  # type: ignore[misc]
    """Registration server; on Register it dials the plugin back like the kubelet does."""

    def __init__(self, plugin_dir: Path) -> None:
        self.plugin_dir = plugin_dir
        self.registrations: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self.server: grpc.aio.Server | None = None

    async def Register(self, request: Any, context: Any) -> Any:
        async with grpc.aio.insecure_channel(f"unix://{self.plugin_dir / request.endpoint}") as channel:
            options = await api_pb2_grpc.DevicePluginStub(channel).GetDevicePluginOptions(api_pb2.Empty(), timeout=5)
        await self.registrations.put((request, options))
        return api_pb2.Empty()

    async def start(self) -> None:
        self.server = grpc.aio.server()
        api_pb2_grpc.add_RegistrationServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"unix://{self.plugin_dir / 'kubelet.sock'}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=0)


@dataclass
class Setup:
    dir: Path
    backend: FakeBackend
    kube: InMemoryKube
    kubelet: FakeKubelet
    runner: DevicePluginRunner
    stats: AgentStats

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"unix://{self.dir / 'gpulane.sock'}")


def pod(name: str, gpu_uuid: str, charge: int) -> PodView:
    annotations = {
        ann.NODE: NODE, ann.GPU_INDEX: "0", ann.GPU_UUID: gpu_uuid, ann.LANE: "lane-1",
        ann.LANE_SIZE_MIB: "2048", ann.PERSISTENT_MIB: "1024", ann.EPHEMERAL_MIB: "2048",
        ann.MEMORY_LIMIT_MIB: "3072", ann.CHARGE_UNITS: str(charge), ann.CLASS: "guaranteed",
    }
    return PodView("team", name, f"uid-{name}", NODE, "Pending", annotations, {ann.LABEL_JOB: "resnet"})


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    # A short path: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    plugin_dir = Path(tempfile.mkdtemp(prefix="gl-dp-", dir="/tmp"))
    backend = FakeBackend.default(NODE)
    kube = InMemoryKube([pod("trainer", backend.gpus()[0].uuid, 12)])
    board, stats = HealthBoard(), AgentStats()
    config = DevicePluginConfig(dir=str(plugin_dir), socket_poll_s=0.05, health_poll_s=0.05)
    ctx = PluginContext(NODE, "/var/run/gpulane/coordinator.sock", config, FAKE_GPU_DIR)  # as the agent on fake
    service = DevicePluginService(ctx, backend, board, lambda: kube, stats)
    runner = DevicePluginRunner(service, config)
    kubelet = FakeKubelet(plugin_dir)
    await kubelet.start()
    tasks = [asyncio.create_task(runner.run()), asyncio.create_task(watch_health(backend, board, stats, 0.05))]
    try:
        yield Setup(plugin_dir, backend, kube, kubelet, runner, stats)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await kubelet.stop()
        shutil.rmtree(plugin_dir, ignore_errors=True)


async def test_registers_after_serving_and_streams_health_changes(setup: Setup) -> None:
    request, options = await asyncio.wait_for(setup.kubelet.registrations.get(), WAIT_S)
    assert (request.version, request.endpoint, request.resource_name) == ("v1beta1", "gpulane.sock", RESOURCE)
    assert request.options.get_preferred_allocation_available
    assert options.get_preferred_allocation_available and not options.pre_start_required

    lost_uuid = setup.backend.gpus()[1].uuid
    async with setup.channel() as channel:
        stream = api_pb2_grpc.DevicePluginStub(channel).ListAndWatch(api_pb2.Empty())
        first = await asyncio.wait_for(stream.read(), WAIT_S)
        assert len(first.devices) == 4 * 64  # 4 GPUs x 16 GiB / 256 MiB
        assert {d.health for d in first.devices} == {"Healthy"}
        assert all(len(d.ID) <= 63 for d in first.devices)

        setup.backend.lose_gpu(1)
        second = await asyncio.wait_for(stream.read(), WAIT_S)
        health = {d.ID: d.health for d in second.devices}
        assert {h for i, h in health.items() if i.startswith(lost_uuid)} == {"Unhealthy"}
        assert {h for i, h in health.items() if not i.startswith(lost_uuid)} == {"Healthy"}
        stream.cancel()


async def test_allocate_gives_the_assigned_pod_its_env_and_refuses_an_unassigned_one(setup: Setup) -> None:
    await asyncio.wait_for(setup.kubelet.registrations.get(), WAIT_S)
    gpu0 = setup.backend.gpus()[0].uuid
    async with setup.channel() as channel:
        stub = api_pb2_grpc.DevicePluginStub(channel)
        available = [f"{gpu0}-m{k}" for k in range(64)] + [f"{setup.backend.gpus()[1].uuid}-m{k}" for k in range(64)]
        preferred = await stub.GetPreferredAllocation(api_pb2.PreferredAllocationRequest(container_requests=[
            api_pb2.ContainerPreferredAllocationRequest(available_deviceIDs=available, allocation_size=12)]))
        ids = list(preferred.container_responses[0].deviceIDs)
        assert len(ids) == 12 and all(i.startswith(gpu0) for i in ids)

        response = await stub.Allocate(api_pb2.AllocateRequest(
            container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids)]))
        container = response.container_responses[0]
        assert container.envs["CUDA_VISIBLE_DEVICES"] == gpu0
        assert container.envs["NVIDIA_VISIBLE_DEVICES"] == gpu0
        assert container.envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=3072M"
        assert container.envs["GPULANE_LANE_ID"] == f"{gpu0}/lane-1"
        assert container.envs["GPULANE_JOB"] == "team/resnet"
        assert container.envs["GPULANE_COORDINATOR_SOCKET"] == "/var/run/gpulane/coordinator.sock"
        assert container.envs["GPULANE_FAKE_GPU_DIR"] == FAKE_GPU_DIR
        assert [(m.container_path, m.host_path, m.read_only) for m in container.mounts] == [
            ("/var/run/gpulane", "/var/run/gpulane", False), (FAKE_GPU_DIR, FAKE_GPU_DIR, False)]
        assert setup.kube.pods["team/trainer"].annotations[ann.ALLOCATED] == "true"

        # the same request again: the only candidate is now allocated, so nobody awaits it
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Allocate(api_pb2.AllocateRequest(
                container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids)]))
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "no pod on node node-a awaits allocation of 12 units" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await stub.Allocate(api_pb2.AllocateRequest(
                container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=["nvidia0"])]))
        assert foreign.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "is not <GPU-UUID>-m<k>" in (foreign.value.details() or "")
        assert setup.stats.allocations() == {"ok": 1, "error": 2}


async def test_kubelet_restart_leads_to_reregistration(setup: Setup) -> None:
    await asyncio.wait_for(setup.kubelet.registrations.get(), WAIT_S)
    # A restarting kubelet goes away and its successor deletes every socket in the directory.
    await setup.kubelet.stop()
    for sock in setup.dir.glob("*.sock"):
        sock.unlink()
    new_kubelet = FakeKubelet(setup.dir)
    await new_kubelet.start()
    try:
        request, _ = await asyncio.wait_for(new_kubelet.registrations.get(), WAIT_S)
        assert request.resource_name == RESOURCE
        for _ in range(int(WAIT_S / 0.05)):  # the counter moves once Register has returned to the plugin
            if setup.runner.registrations == 2:
                break
            await asyncio.sleep(0.05)
        assert setup.runner.registrations == 2
        async with setup.channel() as channel:
            stream = api_pb2_grpc.DevicePluginStub(channel).ListAndWatch(api_pb2.Empty())
            assert len((await asyncio.wait_for(stream.read(), WAIT_S)).devices) == 256
            stream.cancel()
    finally:
        await new_kubelet.stop()


async def test_deleting_the_plugin_socket_alone_leads_to_reserving_and_reregistration(setup: Setup) -> None:
    await asyncio.wait_for(setup.kubelet.registrations.get(), WAIT_S)
    (setup.dir / "gpulane.sock").unlink()
    request, options = await asyncio.wait_for(setup.kubelet.registrations.get(), WAIT_S)
    assert request.endpoint == "gpulane.sock" and options.get_preferred_allocation_available
    assert (setup.dir / "gpulane.sock").exists()
