"""The agent's configuration: a versioned (``version: v1``) tree of frozen dataclasses.

Loaded by :mod:`gpulane_core.settings`: precedence is flag > environment
(``GPULANE_AGENT_<SECTION>_<FIELD>``, e.g. ``GPULANE_AGENT_BACKEND_KIND``) > file (``--config`` or
``GPULANE_AGENT_CONFIG``) > defaults; a bad value from any source fails naming the field, its source
and the reason (``backend.kind (from flag): must be one of ...``). The coordinator's turn settings
are the section ``coordinator.turns`` (:class:`~gpulane_agent.coordinator.settings.TurnSettings`),
passed to the coordinator the agent runs.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpulane_core import fakegpu
from gpulane_core import settings as core_settings
from gpulane_core.podcontract import RESOURCE
from gpulane_core.settings import Problem, SettingsError

from gpulane_agent.coordinator.settings import DEFAULT_SOCKET as DEFAULT_COORDINATOR_SOCKET
from gpulane_agent.coordinator.settings import CoordinatorSettings, TurnSettings

COMPONENT = "agent"
ENV_CONFIG_FILE = core_settings.config_env(COMPONENT)  # GPULANE_AGENT_CONFIG
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins/"
DEFAULT_DRA_PLUGINS_DIR = "/var/lib/kubelet/plugins"
DEFAULT_DRA_REGISTRY_DIR = "/var/lib/kubelet/plugins_registry"
DEFAULT_CDI_DIR = "/var/run/cdi"

__all__ = ["DEFAULT_COORDINATOR_SOCKET", "AgentConfig", "SettingsError", "load_config"]


class BackendKind(enum.Enum):
    NVML = "nvml"
    FAKE = "fake"
    NULL = "null"


class EnforcementPolicy(enum.Enum):
    REPORT = "report"
    EVICT = "evict"


@dataclass(frozen=True, slots=True)
class BackendConfig:
    kind: BackendKind = BackendKind.NVML
    # False: a node whose NVML cannot start logs it and serves nothing (NVIDIA's FailOnInitError=false).
    fail_on_init: bool = False
    fake_config: str = ""
    # Where processes in containers report the GPU memory they "use" (gpulane_core.fakegpu); Allocate
    # mounts it into gpulane pods. Fake backend only; empty turns the hook off.
    fake_process_dir: str = fakegpu.DEFAULT_DIR


@dataclass(frozen=True, slots=True)
class DevicePluginConfig:
    enabled: bool = True
    dir: str = DEFAULT_DEVICE_PLUGIN_DIR
    socket_name: str = "gpulane.sock"
    resource_name: str = RESOURCE
    memory_unit_mib: int = 256
    health_poll_s: float = 1.0
    socket_poll_s: float = 1.0


@dataclass(frozen=True, slots=True)
class DraConfig:
    """The DRA kubelet plugin (gpulane_agent.dra); off by default, like the chart's allocation mode."""

    enabled: bool = False
    # The plugin serves <plugins_dir>/gpu.gpulane.dev/dra.sock and registers it through a socket in
    # registry_dir, which the kubelet's plugin watcher scans.
    plugins_dir: str = DEFAULT_DRA_PLUGINS_DIR
    registry_dir: str = DEFAULT_DRA_REGISTRY_DIR
    cdi_dir: str = DEFAULT_CDI_DIR  # where NodePrepareResources writes one CDI spec per claim
    slice_resync_s: float = 60.0  # republish the ResourceSlice this often even without a health change
    socket_poll_s: float = 1.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    address: str = "0.0.0.0"
    port: int = 9400
    # Also export dcgm-exporter's DCGM_FI_* families (from NVML), for clusters that run no dcgm-exporter.
    dcgm_compat: bool = False


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    enabled: bool = True
    kubeconfig: str = ""  # empty: in-cluster service account, else ~/.kube/config
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class InventoryConfig:
    heartbeat_s: float = 15.0


@dataclass(frozen=True, slots=True)
class EnforcementConfig:
    policy: EnforcementPolicy = EnforcementPolicy.REPORT
    interval_s: float = 5.0
    proc_root: str = "/proc"
    # Allocations briefly overshoot while frameworks warm up; only a reading this far over the lane counts.
    tolerance_mib: int = 0


@dataclass(frozen=True, slots=True)
class PodResourcesConfig:
    # Used when the socket exists (the chart mounts /var/lib/kubelet/pod-resources); silently unused if not.
    enabled: bool = True
    socket: str = "/var/lib/kubelet/pod-resources/kubelet.sock"


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    socket: str = DEFAULT_COORDINATOR_SOCKET
    serve: bool = True  # run the lane-turn coordinator (gpulane_agent.coordinator) in this process
    turns: TurnSettings = field(default_factory=TurnSettings)  # who holds a lane, and for how long


@dataclass(frozen=True, slots=True)
class AgentConfig:
    version: str = "v1"
    node_name: str = field(default_factory=socket.gethostname)
    backend: BackendConfig = field(default_factory=BackendConfig)
    device_plugin: DevicePluginConfig = field(default_factory=DevicePluginConfig)
    dra: DraConfig = field(default_factory=DraConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    enforcement: EnforcementConfig = field(default_factory=EnforcementConfig)
    pod_resources: PodResourcesConfig = field(default_factory=PodResourcesConfig)
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)

    def coordinator_settings(self) -> CoordinatorSettings:
        """What the lane-turn coordinator this agent runs is started with (turns included)."""
        return CoordinatorSettings(socket_path=self.coordinator.socket, hostname=self.node_name, turns=self.coordinator.turns)

    def validate(self) -> list[str]:
        """Field-named problems of the merged tree (each section's own checks run too)."""
        dp, metrics, enf, kube = self.device_plugin, self.metrics, self.enforcement, self.kubernetes
        checks = [
            (self.version == "v1", f"version: only v1 is supported, got {self.version!r}"),
            (bool(self.node_name), "node_name: must not be empty"),
            (dp.memory_unit_mib >= 1, f"device_plugin.memory_unit_mib: must be >= 1, got {dp.memory_unit_mib}"),
            ("/" in dp.resource_name, f"device_plugin.resource_name: must be domain/name, got {dp.resource_name!r}"),
            ("/" not in dp.socket_name and dp.socket_name.endswith(".sock"),
             f"device_plugin.socket_name: must be a file name ending in .sock, got {dp.socket_name!r}"),
            (dp.health_poll_s > 0, "device_plugin.health_poll_s: must be positive"),
            (dp.socket_poll_s > 0, "device_plugin.socket_poll_s: must be positive"),
            (self.dra.plugins_dir.startswith("/"), "dra.plugins_dir: must be an absolute path"),
            (self.dra.registry_dir.startswith("/"), "dra.registry_dir: must be an absolute path"),
            (self.dra.cdi_dir.startswith("/"), "dra.cdi_dir: must be an absolute path"),
            (self.dra.slice_resync_s > 0, "dra.slice_resync_s: must be positive"),
            (self.dra.socket_poll_s > 0, "dra.socket_poll_s: must be positive"),
            (0 <= metrics.port <= 65535, f"metrics.port: must be 0..65535, got {metrics.port}"),
            (self.inventory.heartbeat_s > 0, "inventory.heartbeat_s: must be positive"),
            (enf.interval_s > 0, "enforcement.interval_s: must be positive"),
            (enf.tolerance_mib >= 0, "enforcement.tolerance_mib: must not be negative"),
            (kube.retry_initial_s > 0, "kubernetes.retry_initial_s: must be positive"),
            (kube.retry_max_s >= kube.retry_initial_s, "kubernetes.retry_max_s: must be >= kubernetes.retry_initial_s"),
            (self.coordinator.socket.startswith("/"), "coordinator.socket: must be an absolute path"),
            (not self.backend.fake_process_dir or self.backend.fake_process_dir.startswith("/"),
             f"backend.fake_process_dir: must be an absolute path (or empty to turn it off), "
             f"got {self.backend.fake_process_dir!r}"),
            (self.backend.kind is not BackendKind.FAKE or not self.backend.fake_config
             or Path(self.backend.fake_config).is_file(),
             f"backend.fake_config: no such file {self.backend.fake_config!r}"),
        ]  # fmt: skip
        return [message for ok, message in checks if not ok]


def load_config(
    file: str | None = None, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> AgentConfig:
    """Merge the sources (flag > env > file) and build a validated AgentConfig."""
    text = None
    if file:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise SettingsError(Problem("config file", f"cannot read {file}: {exc.strerror or exc}")) from None
    return core_settings.load(AgentConfig, COMPONENT, file_text=text, env=env, flags=flags)
