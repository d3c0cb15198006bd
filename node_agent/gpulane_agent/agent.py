"""The agent process: wires the backend, device plugin, inventory, enforcement, exporter and coordinator.

Each concern runs as its own asyncio task so one waiting on something absent (no kubelet yet, no API
server yet) never stops the others: metrics are served from the first second, and what the agent is
waiting for is logged once, then retried with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from gpulane_agent import inventory
from gpulane_agent.deviceplugin.server import DevicePluginRunner, DevicePluginService, PluginContext
from gpulane_agent.dra import cdi
from gpulane_agent.dra.api import DraKube
from gpulane_agent.dra.plugin import DraDriver, DriverContext
from gpulane_agent.dra.publisher import SlicePublisher
from gpulane_agent.dra.runner import DraPluginRunner, SocketPaths
from gpulane_agent.enforcement.attribution import ProcReader
from gpulane_agent.enforcement.enforcer import Enforcer
from gpulane_agent.exporter.collector import GpuCollector
from gpulane_agent.exporter.server import MetricsServer, make_registry
from gpulane_agent.gpu.backend import GpuBackend
from gpulane_agent.health import HealthBoard, watch_health
from gpulane_agent.kube.api import KubeApi, KubeError
from gpulane_agent.lanes import NodeView, ViewHolder, lane_views, pod_lanes
from gpulane_agent.podresources.check import PodResourcesCheck
from gpulane_agent.podresources.holdings import holder_containers
from gpulane_agent.settings import AgentConfig, BackendKind
from gpulane_agent.stats import AgentStats

if TYPE_CHECKING:
    from gpulane_agent.coordinator import CoordinatorServer

log = logging.getLogger(__name__)

KubeFactory = Callable[[], Awaitable[KubeApi]]
# The DRA port on the same connection (production: AsyncDraKube over AsyncKube's client); None: no DRA API.
DraKubeOf = Callable[[KubeApi], DraKube | None]


def agent_version() -> str:
    try:
        return version("gpulane")
    except PackageNotFoundError:
        return "0.0.0+unknown"


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        backend: GpuBackend,
        kube_factory: KubeFactory | None,
        dra_kube_of: DraKubeOf = lambda kube: None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.stats = AgentStats()
        self.board = HealthBoard()
        self.view = ViewHolder()
        self.kube: KubeApi | None = None
        self._kube_factory = kube_factory
        self.enforcer = Enforcer(backend, ProcReader(Path(config.enforcement.proc_root)), config.enforcement, self.stats)
        self.collector = GpuCollector(
            backend, self.board, self.view, self.stats, config.node_name, dcgm_compat=config.metrics.dcgm_compat)
        self.registry = make_registry(self.collector)
        self.metrics = MetricsServer(self.registry, config.metrics.address, config.metrics.port)
        fake_dir = config.backend.fake_process_dir if config.backend.kind is BackendKind.FAKE else ""
        ctx = PluginContext(config.node_name, config.coordinator.socket, config.device_plugin, fake_dir)
        self.plugin_service = DevicePluginService(ctx, backend, self.board, lambda: self.kube, self.stats)
        self.plugin = DevicePluginRunner(self.plugin_service, config.device_plugin)
        self.dra_kube: DraKube | None = None
        self._dra_kube_of = dra_kube_of
        dra = config.dra
        self.dra_driver = DraDriver(
            DriverContext(config.node_name, Path(dra.cdi_dir), config.coordinator.socket, fake_dir),
            backend, lambda: self.dra_kube)  # fmt: skip
        self.slice_publisher = SlicePublisher(
            config.node_name, backend, self.board, lambda: self.dra_kube, config.device_plugin.memory_unit_mib,
            dra.slice_resync_s)  # fmt: skip
        # A (re)registration may follow a kubelet restart, which deleted the node's slices: republish.
        self.dra_plugin = DraPluginRunner(self.dra_driver, SocketPaths.under(dra.plugins_dir, dra.registry_dir),
                                          dra.socket_poll_s, on_registered=self.slice_publisher.nudge)  # fmt: skip
        self.pod_resources = PodResourcesCheck(config.pod_resources, config.device_plugin.resource_name)
        self.coordinator: CoordinatorServer | None = None
        self._last_published: tuple[int, NodeView, tuple[cdi.PreparedClaim, ...] | None] | None = None
        self._last_heartbeat = 0.0
        self._list_failing = False
        self._inventory_error = ""
        # Set once this node's GPUNode is published (or at once without the API): the operator places
        # by the GPUNode's GPU UUIDs, so the kubelet must not advertise our resource before it exists.
        self._inventory_published = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled; everything started here is stopped on the way out."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._start_coordinator()  # first, so its collector is registered before the first scrape
            self.metrics.start()
            tasks.append(asyncio.create_task(self._connect_kube(), name="kube-connect"))
            tasks.append(asyncio.create_task(
                watch_health(self.backend, self.board, self.stats, self.config.device_plugin.health_poll_s),
                name="health"))
            if self.config.device_plugin.enabled:
                tasks.append(asyncio.create_task(self._serve_plugin(), name="device-plugin"))
            if self.config.dra.enabled:
                tasks.append(asyncio.create_task(self.dra_plugin.run(), name="dra-plugin"))
                tasks.append(asyncio.create_task(self._publish_slices(), name="dra-slices"))
            tasks.append(asyncio.create_task(self._tick_forever(), name="node-loop"))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._shutdown()

    async def tick(self) -> None:
        """One pass: list this node's pods, measure, publish the view, enforce, heartbeat the inventory."""
        pods = []
        if self.kube is not None:
            try:
                pods = await self.kube.list_node_pods(self.config.node_name)
                if self._list_failing:
                    log.info("listing pods works again")
                self._list_failing = False
            except KubeError as exc:
                if not self._list_failing:
                    log.warning("cannot list this node's pods (keeping the last view): %s", exc)
                self._list_failing = True
                return
        lanes = pod_lanes(pods, self.config.node_name)
        holdings = await self.pod_resources.holdings()
        usage = await asyncio.to_thread(self.enforcer.measure, lanes, holder_containers(lanes, holdings))
        view = NodeView(pod_lanes=lanes, usage=usage, lanes=lane_views(lanes, usage))
        self.view.publish(view)
        await self.enforcer.apply(self.kube, self.enforcer.decide(lanes, usage))
        await self.pod_resources.report(self.kube, lanes, holdings)
        await self._publish_inventory(view)

    async def _publish_inventory(self, view: NodeView) -> None:
        if self.kube is None:
            return
        loop = asyncio.get_running_loop()
        dra_claims = (
            await asyncio.to_thread(cdi.read_prepared, Path(self.config.dra.cdi_dir))
            if self.config.dra.enabled
            else None
        )
        # A claim prepared or unprepared is published at the next tick, not at the next heartbeat.
        state = (self.board.version, NodeView(view.pod_lanes, (), view.lanes), dra_claims)
        due = loop.time() - self._last_heartbeat >= self.config.inventory.heartbeat_s
        if not due and state == self._last_published:
            return
        gpus = self.backend.gpus()
        status = inventory.gpunode_status(
            gpus,
            await asyncio.to_thread(inventory.read_used, self.backend, self.stats),
            self.board.snapshot(g.index for g in gpus),
            view.lanes,
            dt.datetime.now(dt.UTC),
            agent_version(),
            self.config.device_plugin.memory_unit_mib,
            dra_claims,
        )
        try:
            await self.kube.apply_gpunode(self.config.node_name, {inventory.NODE_LABEL: self.config.node_name}, status)
        except KubeError as exc:
            message = f"cannot publish GPUNode {self.config.node_name} (retrying every tick): {exc}"
            if message != self._inventory_error:  # e.g. the CRD is not installed yet: say it once
                log.warning("%s", message)
                self._inventory_error = message
            return
        if self._inventory_error:
            log.info("GPUNode %s published again", self.config.node_name)
            self._inventory_error = ""
        self._last_published = state
        self._last_heartbeat = loop.time()
        self._inventory_published.set()

    async def _serve_plugin(self) -> None:
        """Register with the kubelet only after the first GPUNode publication.

        Before it, the operator knows this node only from its GPU labels (placeholder UUIDs); a pod
        placed on those would be handed CUDA_VISIBLE_DEVICES naming no real GPU and evicted (GPULost)
        once the GPUNode appears. Without allocatable gpulane.dev/gpu-memory no such pod can start."""
        if not self._inventory_published.is_set():
            log.info("device plugin: registering with the kubelet once GPUNode %s is published", self.config.node_name)
            await self._inventory_published.wait()
        await self.plugin.run()

    async def _publish_slices(self) -> None:
        """Once the API is reachable; the slice is left in place on shutdown, so an agent restart does not
        make the node's GPUs unallocatable (the kubelet removes a node's slices when it restarts itself)."""
        while self.dra_kube is None:
            await asyncio.sleep(self.config.dra.socket_poll_s)
        await self.slice_publisher.run()

    async def _tick_forever(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.config.enforcement.interval_s)

    async def _connect_kube(self) -> None:
        if self._kube_factory is None or not self.config.kubernetes.enabled:
            log.info("kubernetes.enabled is false: no Allocate, inventory or enforcement actions")
            self._inventory_published.set()  # no GPUNode will ever be published: nothing to wait for
            return
        delay = self.config.kubernetes.retry_initial_s
        told = False
        while self.kube is None:
            try:
                kube = await self._kube_factory()
                await kube.list_node_pods(self.config.node_name)  # proves reachability and RBAC
                self.kube = kube
                self.dra_kube = self._dra_kube_of(kube)
                log.info("connected to the Kubernetes API server")
            except KubeError as exc:
                if not told:
                    log.warning("waiting for the Kubernetes API server (retrying with backoff): %s", exc)
                    told = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.kubernetes.retry_max_s)

    async def _start_coordinator(self) -> None:
        if not self.config.coordinator.serve:
            return
        from gpulane_agent.coordinator import CoordinatorServer

        server = CoordinatorServer(self.config.coordinator_settings())
        try:
            await server.start()
        except OSError as exc:
            log.error("coordinator disabled: cannot serve %s: %s", self.config.coordinator.socket, exc)
            return
        self.registry.register(server.collector())
        self.coordinator = server

    async def _shutdown(self) -> None:
        if self.coordinator is not None:
            await self.coordinator.stop()
        await self.plugin.stop()
        await self.dra_plugin.stop()
        self.metrics.stop()
        if self.kube is not None:
            await self.kube.close()
        self.backend.shutdown()
