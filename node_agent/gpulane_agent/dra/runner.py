"""The DRA plugin's sockets: the DRAPlugin service, and its registration with the kubelet's plugin watcher.

The kubelet's plugin watcher scans ``plugins_registry/`` for sockets (at start and on every new file),
dials each, calls ``Registration.GetInfo`` and, if it accepts the type, name and a version, dials the
endpoint it names and reports back through ``NotifyRegistrationStatus``. So the plugin socket must be
serving before the registration socket appears, and a socket deleted underneath us (a node cleanup, a
kubelet that wipes its plugin dirs) is served again, which the watcher sees as a new plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gpulane_agent.dra._proto import (
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2_grpc,
    registration_v1_pb2,
    registration_v1_pb2_grpc,
)
from gpulane_agent.dra.claims import DRIVER
from gpulane_agent.dra.plugin import DraDriver, DRAPluginV1, DRAPluginV1beta1

log = logging.getLogger(__name__)

PLUGIN_TYPE = "DRAPlugin"  # k8s.io/kubelet/pkg/apis/pluginregistration/v1 DRAPlugin
SUPPORTED_VERSIONS = ("v1.DRAPlugin", "v1beta1.DRAPlugin")  # DRAPluginService of dra/v1 and dra/v1beta1
PLUGIN_SOCKET = "dra.sock"
REGISTRATION_SOCKET = f"{DRIVER}-reg.sock"


@dataclass(frozen=True, slots=True)
class SocketPaths:
    plugin: Path
    registration: Path

    @classmethod
    def under(cls, plugins_dir: str, registry_dir: str) -> SocketPaths:
        return cls(Path(plugins_dir) / DRIVER / PLUGIN_SOCKET, Path(registry_dir) / REGISTRATION_SOCKET)


class RegistrationService:  # served with registration_v1_pb2_grpc.add_RegistrationServicer_to_server
    """What the plugin watcher asks; remembers the kubelet's verdict for logs and tests."""

    def __init__(self, endpoint: Path, on_registered: Callable[[], None] = lambda: None) -> None:
        self._endpoint = endpoint
        self._on_registered = on_registered
        self.registered = asyncio.Event()
        self.last_error = ""

    async def GetInfo(self, request: registration_v1_pb2.InfoRequest, context: Any) -> registration_v1_pb2.PluginInfo:
        return registration_v1_pb2.PluginInfo(
            type=PLUGIN_TYPE, name=DRIVER, endpoint=str(self._endpoint), supported_versions=list(SUPPORTED_VERSIONS)
        )

    async def NotifyRegistrationStatus(
        self, request: registration_v1_pb2.RegistrationStatus, context: Any
    ) -> registration_v1_pb2.RegistrationStatusResponse:
        if request.plugin_registered:
            log.info("the kubelet registered DRA driver %s (endpoint %s)", DRIVER, self._endpoint)
            self.last_error = ""
            self.registered.set()
            self._on_registered()
        else:
            log.warning("the kubelet refused DRA driver %s: %s", DRIVER, request.error)
            self.last_error = request.error
            self.registered.clear()
        return registration_v1_pb2.RegistrationStatusResponse()


async def _serve(path: Path, add: list[tuple[Any, Any]]) -> grpc.aio.Server:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket from a previous run would make bind fail
    server = grpc.aio.server()
    for adder, service in add:
        adder(service, server)
    server.add_insecure_port(f"unix://{path}")
    await server.start()
    os.chmod(path, 0o600)
    return server


class DraPluginRunner:
    def __init__(
        self, driver: DraDriver, paths: SocketPaths, poll_s: float = 1.0, on_registered: Callable[[], None] = lambda: None
    ) -> None:
        self._driver = driver
        self.paths = paths
        self._poll_s = poll_s
        self.registration = RegistrationService(paths.plugin, on_registered)
        self._plugin_server: grpc.aio.Server | None = None
        self._registration_server: grpc.aio.Server | None = None
        self.serves = 0  # how many times the sockets were (re)created

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                await asyncio.sleep(self._poll_s)
        finally:
            await self.stop()

    async def step(self) -> None:
        """(Re)serve both sockets if either is missing: plugin first, then registration."""
        if (
            self._plugin_server is not None
            and self.paths.plugin.exists()
            and self._registration_server is not None
            and self.paths.registration.exists()
        ):
            return
        await self.stop()
        self.registration.registered.clear()  # a new socket is a new plugin to the watcher
        self._plugin_server = await _serve(
            self.paths.plugin,
            [
                (dra_v1_pb2_grpc.add_DRAPluginServicer_to_server, DRAPluginV1(self._driver)),
                (dra_v1beta1_pb2_grpc.add_DRAPluginServicer_to_server, DRAPluginV1beta1(self._driver)),
            ],
        )
        self._registration_server = await _serve(
            self.paths.registration, [(registration_v1_pb2_grpc.add_RegistrationServicer_to_server, self.registration)]
        )
        self.serves += 1
        log.info("DRA plugin serving on %s, registration on %s", self.paths.plugin, self.paths.registration)

    async def stop(self) -> None:
        # Registration first: the watcher then sees the plugin go before its endpoint does.
        for server, path in ((self._registration_server, self.paths.registration), (self._plugin_server, self.paths.plugin)):
            if server is not None:
                await server.stop(grace=0)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._plugin_server = self._registration_server = None
