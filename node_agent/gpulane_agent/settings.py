"""The agent's configuration: a versioned (``version: v1``) tree of frozen dataclasses.

Precedence is flag > environment (``GPULANE_AGENT_<SECTION>_<FIELD>``, e.g. ``GPULANE_AGENT_BACKEND_KIND``)
> file > defaults. Everything is merged as dotted keys first, then converted and validated once, so a bad
value from any source fails with the same message naming the field (``backend.kind: must be one of ...``).
"""

from __future__ import annotations

import dataclasses
import enum
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from gpulane_core import fakegpu
from gpulane_core.podcontract import RESOURCE

ENV_PREFIX = "GPULANE_AGENT_"
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins/"
DEFAULT_COORDINATOR_SOCKET = "/var/run/gpulane/coordinator.sock"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the dotted field."""


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


@dataclass(frozen=True, slots=True)
class AgentConfig:
    version: str = "v1"
    node_name: str = field(default_factory=socket.gethostname)
    backend: BackendConfig = field(default_factory=BackendConfig)
    device_plugin: DevicePluginConfig = field(default_factory=DevicePluginConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    enforcement: EnforcementConfig = field(default_factory=EnforcementConfig)
    pod_resources: PodResourcesConfig = field(default_factory=PodResourcesConfig)
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)


def load_config(
    file: str | None = None, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> AgentConfig:
    """Merge the sources (flag > env > file) and build a validated AgentConfig."""
    merged: dict[str, Any] = {}
    if file:
        merged.update(_flatten(_read_file(Path(file))))
    merged.update(_from_env(env or {}))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    version = merged.pop("version", "v1")
    if version != "v1":
        raise ConfigError(f"version: only v1 is supported, got {version!r}")
    config = _build(AgentConfig, merged, prefix="")
    unknown = sorted(set(merged) - _known_keys(AgentConfig, ""))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting")
    return _validate(config)


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file: cannot read {path}: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file: {path} must hold a mapping")
    return raw


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    by_env = {_env_name(k): k for k in _known_keys(AgentConfig, "")}
    return {by_env[name]: value for name, value in env.items() if name in by_env}


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def _section(f: dataclasses.Field[Any]) -> type[Any] | None:
    """The dataclass type of a nested section, or None for a leaf setting."""
    factory = f.default_factory
    if factory is not dataclasses.MISSING and isinstance(factory, type) and dataclasses.is_dataclass(factory):
        return factory
    return None


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    factory = f.default_factory
    return factory() if factory is not dataclasses.MISSING else None


def _known_keys(cls: type[Any], prefix: str) -> set[str]:
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        section = _section(f)
        keys |= _known_keys(section, f"{prefix}{f.name}.") if section else {f"{prefix}{f.name}"}
    return keys


def _build(cls: type[Any], merged: Mapping[str, Any], prefix: str) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        section = _section(f)
        if section is not None:
            kwargs[f.name] = _build(section, merged, dotted + ".")
        elif dotted in merged:
            kwargs[f.name] = _convert(dotted, merged[dotted], _default(f))
    return cls(**kwargs)


def _convert(dotted: str, value: Any, default: Any) -> Any:
    if isinstance(default, enum.Enum):
        try:
            return type(default)(str(value).lower())
        except ValueError as exc:
            allowed = [m.value for m in type(default)]
            raise ConfigError(f"{dotted}: must be one of {allowed}, got {value!r}") from exc
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "1", "yes", "on"}:
            return True
        if text in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"{dotted}: must be true or false, got {value!r}")
    if isinstance(default, int | float):
        try:
            number = type(default)(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{dotted}: must be a {type(default).__name__}, got {value!r}") from exc
        if isinstance(default, int) and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{dotted}: must be an integer, got {value!r}")
        return number
    if isinstance(value, Mapping | list):
        raise ConfigError(f"{dotted}: must be a string, got {type(value).__name__}")
    return str(value)


def _validate(config: AgentConfig) -> AgentConfig:
    dp, metrics, enf = config.device_plugin, config.metrics, config.enforcement
    checks = [
        (bool(config.node_name), "node_name: must not be empty"),
        (dp.memory_unit_mib >= 1, f"device_plugin.memory_unit_mib: must be >= 1, got {dp.memory_unit_mib}"),
        ("/" in dp.resource_name, f"device_plugin.resource_name: must be domain/name, got {dp.resource_name!r}"),
        ("/" not in dp.socket_name and dp.socket_name.endswith(".sock"),
         f"device_plugin.socket_name: must be a file name ending in .sock, got {dp.socket_name!r}"),
        (dp.health_poll_s > 0, "device_plugin.health_poll_s: must be positive"),
        (dp.socket_poll_s > 0, "device_plugin.socket_poll_s: must be positive"),
        (0 <= metrics.port <= 65535, f"metrics.port: must be 0..65535, got {metrics.port}"),
        (config.inventory.heartbeat_s > 0, "inventory.heartbeat_s: must be positive"),
        (enf.interval_s > 0, "enforcement.interval_s: must be positive"),
        (enf.tolerance_mib >= 0, "enforcement.tolerance_mib: must not be negative"),
        (config.kubernetes.retry_initial_s > 0, "kubernetes.retry_initial_s: must be positive"),
        (config.kubernetes.retry_max_s >= config.kubernetes.retry_initial_s,
         "kubernetes.retry_max_s: must be >= kubernetes.retry_initial_s"),
        (config.coordinator.socket.startswith("/"), "coordinator.socket: must be an absolute path"),
        (not config.backend.fake_process_dir or config.backend.fake_process_dir.startswith("/"),
         f"backend.fake_process_dir: must be an absolute path (or empty to turn it off), "
         f"got {config.backend.fake_process_dir!r}"),
        (config.backend.kind is not BackendKind.FAKE or not config.backend.fake_config
         or Path(config.backend.fake_config).is_file(),
         f"backend.fake_config: no such file {config.backend.fake_config!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return config
