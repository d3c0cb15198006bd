"""The kubelet-facing gRPC servers: the DevicePlugin service and its registration lifecycle.

Thin by design: every decision is a pure function (``units``, ``allocate``); this module only moves
protobufs, talks to the kubelet and the API through injected ports, and keeps the socket registered:
it serves its socket *before* calling Register, and re-registers when kubelet.sock is recreated
(kubelet restart) or its own socket disappears (a new kubelet deletes every socket in the directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from gpulane_core import podcontract as ann

from gpulane_agent.deviceplugin import allocate, units
from gpulane_agent.deviceplugin._proto import api_pb2, api_pb2_grpc
from gpulane_agent.gpu.backend import GpuBackend
from gpulane_agent.health import HealthBoard
from gpulane_agent.kube.api import KubeApi, KubeError
from gpulane_agent.settings import DevicePluginConfig
from gpulane_agent.stats import AgentStats

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
REGISTER_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class PluginContext:
    node_name: str
    coordinator_socket: str
    config: DevicePluginConfig
    fake_gpu_dir: str = ""  # the fake backend's process-report directory, mounted into containers


class DevicePluginService(api_pb2_grpc.DevicePluginServicer):
    """Implements the five DevicePlugin RPCs over the backend, the health board and the KubeApi port."""

    def __init__(
        self,
        ctx: PluginContext,
        backend: GpuBackend,
        board: HealthBoard,
        kube: Callable[[], KubeApi | None],
        stats: AgentStats,
    ) -> None:
        self._ctx = ctx
        self._backend = backend
        self._board = board
        self._kube = kube
        self._stats = stats
        self._allocate_lock = asyncio.Lock()  # one pod at a time: the match relies on "not yet allocated"

    def device_list(self) -> api_pb2.ListAndWatchResponse:
        gpus = self._backend.gpus()
        health = self._board.snapshot(g.index for g in gpus)
        devices = []
        for dev in units.advertised_devices(gpus, health, self._ctx.config.memory_unit_mib):
            topology = None
            if dev.numa_node is not None:
                topology = api_pb2.TopologyInfo(nodes=[api_pb2.NUMANode(ID=dev.numa_node)])
            devices.append(
                api_pb2.Device(ID=dev.id, health="Healthy" if dev.healthy else "Unhealthy", topology=topology)
            )
        return api_pb2.ListAndWatchResponse(devices=devices)

    async def GetDevicePluginOptions(self, request: api_pb2.Empty, context: Any) -> api_pb2.DevicePluginOptions:
        return api_pb2.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)

    async def ListAndWatch(self, request: api_pb2.Empty, context: Any) -> AsyncIterator[api_pb2.ListAndWatchResponse]:
        seen = self._board.version
        yield self.device_list()
        while True:
            seen = await self._board.wait_newer(seen)
            yield self.device_list()

    async def GetPreferredAllocation(
        self, request: api_pb2.PreferredAllocationRequest, context: Any
    ) -> api_pb2.PreferredAllocationResponse:
        responses = []
        for req in request.container_requests:
            preferred = await self._assigned_gpu(int(req.allocation_size))
            ids = units.preferred_allocation(
                list(req.available_deviceIDs), list(req.must_include_deviceIDs), int(req.allocation_size), preferred
            )
            responses.append(api_pb2.ContainerPreferredAllocationResponse(deviceIDs=ids))
        return api_pb2.PreferredAllocationResponse(container_responses=responses)

    async def Allocate(self, request: api_pb2.AllocateRequest, context: Any) -> api_pb2.AllocateResponse:
        async with self._allocate_lock:
            try:
                response, allocations = await self._allocate(request)
                kube = self._require_kube()
                for allocation in allocations:
                    await kube.annotate_pod(allocation.pod.namespace, allocation.pod.name, {ann.ALLOCATED: "true"})
            except allocate.AllocateRefused as exc:
                self._stats.allocation("error")
                log.warning("Allocate refused: %s", exc)
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            except KubeError as exc:
                self._stats.allocation("error")
                log.warning("Allocate failed, API server: %s", exc)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot reach the Kubernetes API: {exc}")
            self._stats.allocation("ok")
            return response

    async def PreStartContainer(
        self, request: api_pb2.PreStartContainerRequest, context: Any
    ) -> api_pb2.PreStartContainerResponse:
        return api_pb2.PreStartContainerResponse()

    # -- internals ----------------------------------------------------------------------------------

    def _require_kube(self) -> KubeApi:
        kube = self._kube()
        if kube is None:
            raise KubeError("the agent has not connected to the API server yet")
        return kube

    async def _allocate(
        self, request: api_pb2.AllocateRequest
    ) -> tuple[api_pb2.AllocateResponse, list[allocate.Allocation]]:
        pods = await self._require_kube().list_node_pods(self._ctx.node_name)
        resource = self._ctx.config.resource_name
        taken: set[str] = set()
        allocations = []
        responses = []
        for req in request.container_requests:
            count = len(req.devices_ids)
            for dev in req.devices_ids:
                try:
                    units.split_device_id(dev)
                except units.DeviceIdError as exc:  # an ID we never advertised: kubelet/plugin mismatch
                    raise allocate.AllocateRefused(str(exc)) from exc
            candidates = [p for p in pods if p.key not in taken]
            pod = allocate.find_pod(candidates, self._ctx.node_name, count, resource)
            allocation = allocate.parse_allocation(pod)
            allocate.check_units(allocation, count)
            taken.add(pod.key)
            allocations.append(allocation)
            grant = allocate.container_grant(allocation, self._ctx.coordinator_socket, self._ctx.fake_gpu_dir)
            responses.append(
                api_pb2.ContainerAllocateResponse(
                    envs=dict(grant.envs),
                    mounts=[
                        api_pb2.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
                        for m in grant.mounts
                    ],
                )
            )
        return api_pb2.AllocateResponse(container_responses=responses), allocations

    async def _assigned_gpu(self, size: int) -> str | None:
        kube = self._kube()
        if kube is None:
            return None
        try:
            pods = await kube.list_node_pods(self._ctx.node_name)
            pod = allocate.find_pod(pods, self._ctx.node_name, size, self._ctx.config.resource_name)
            return allocate.parse_allocation(pod).assignment.gpu_uuids[0]
        except (KubeError, allocate.AllocateRefused):
            return None  # only a preference: fall back to packing


def _socket_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_ctime_ns)


class DevicePluginRunner:
    """Serves the plugin socket and keeps it registered with the kubelet across kubelet restarts."""

    def __init__(self, service: DevicePluginService, config: DevicePluginConfig) -> None:
        self._service = service
        self._config = config
        self._dir = Path(config.dir)
        self._server: grpc.aio.Server | None = None
        self._registered_with: tuple[int, int] | None = None
        self._waiting_logged = False
        self._last_error = ""
        self.registrations = 0

    @property
    def socket_path(self) -> Path:
        return self._dir / self._config.socket_name

    @property
    def kubelet_socket(self) -> Path:
        return self._dir / KUBELET_SOCKET

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                await asyncio.sleep(self._config.socket_poll_s)
        finally:
            await self.stop()

    async def step(self) -> None:
        """One pass of the lifecycle: (re)serve our socket, then (re)register if the kubelet changed."""
        if self._server is None or not self.socket_path.exists():
            await self._serve()
            self._registered_with = None
        kubelet = _socket_identity(self.kubelet_socket)
        if kubelet is None:
            if not self._waiting_logged:
                log.info("waiting for the kubelet: %s does not exist yet", self.kubelet_socket)
                self._waiting_logged = True
            self._registered_with = None
            return
        if kubelet != self._registered_with:
            try:
                await self._register()
            except grpc.aio.AioRpcError as exc:
                message = f"registration with {self.kubelet_socket} failed: {exc.code().name} {exc.details()}"
                if message != self._last_error:  # retried every poll; said once per distinct failure
                    log.warning("%s (retrying)", message)
                    self._last_error = message
                return
            self._registered_with = kubelet
            self._last_error = ""
            self._waiting_logged = False

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _serve(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0)
        self._dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a stale socket from a previous run would make bind fail
        server = grpc.aio.server()
        api_pb2_grpc.add_DevicePluginServicer_to_server(self._service, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix://{self.socket_path}")
        await server.start()
        os.chmod(self.socket_path, 0o600)
        self._server = server
        log.info("device plugin serving on %s", self.socket_path)

    async def _register(self) -> None:
        async with grpc.aio.insecure_channel(f"unix://{self.kubelet_socket}") as channel:
            stub = api_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            await stub.Register(
                api_pb2.RegisterRequest(
                    version=API_VERSION,
                    endpoint=self._config.socket_name,
                    resource_name=self._config.resource_name,
                    options=api_pb2.DevicePluginOptions(get_preferred_allocation_available=True),
                ),
                timeout=REGISTER_TIMEOUT_S,
            )
        self.registrations += 1
        log.info("registered %s with the kubelet (endpoint %s)", self._config.resource_name, self._config.socket_name)
