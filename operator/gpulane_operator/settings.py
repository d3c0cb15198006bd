"""Operator settings: one frozen dataclass tree, read with flag > environment > file precedence.

The file is YAML with the same nesting as the tree (mount it from a ConfigMap); environment
variables are ``GPULANE_<SECTION>_<FIELD>`` (``GPULANE_SCHEDULING_ORDERING=srtf``); flags are
given as dotted keys (``scheduling.ordering``). Every bad value is reported with its key and source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from gpulane_core.registry import default_registry
from gpulane_core.scheduler import SchedulerConfig

from gpulane_operator.inventory import SelectorError, parse_selector

ENV_CONFIG_FILE = "GPULANE_OPERATOR_CONFIG"
NODE_LOSS_ACTIONS = ("reschedule", "fail")


class SettingsError(ValueError):
    """Settings that cannot be used; the message names every bad key."""


@dataclass(frozen=True, slots=True)
class SchedulingSettings:
    ordering: str = "fifo"  # fifo | srtf | pack | fair | weight | gpulane (gpulane_core.ordering)
    placement: str = "gpulane"  # a placement profile of gpulane_core.registry
    preemption: bool = True  # guaranteed jobs may preempt best-effort ones
    backfill: bool = True  # later jobs may pass one that does not fit
    debounce_s: float = 0.05  # gather watch events this long before a cycle
    resync_s: float = 5.0  # run a cycle at least this often while jobs are pending
    on_node_loss: str = "reschedule"  # reschedule | fail
    max_concurrent_requests: int = 32  # API calls in flight per cycle


@dataclass(frozen=True, slots=True)
class ScopeSettings:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    node_selector: str = ""  # k=v,k2 (equality/existence): only these nodes get jobs; empty: all


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    port: int = 8080  # 0 disables the /metrics endpoint


@dataclass(frozen=True, slots=True)
class PeeringSettings:
    standalone: bool = False  # True: no peering, this replica always schedules
    name: str = "gpulane"  # the ClusterKopfPeering / KopfPeering object
    priority: int = 0
    handover_s: float = 3.0  # with peering: wait this long after start before the first cycle


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    scheduling: SchedulingSettings = field(default_factory=SchedulingSettings)
    scope: ScopeSettings = field(default_factory=ScopeSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    peering: PeeringSettings = field(default_factory=PeeringSettings)

    def scheduler_config(self) -> SchedulerConfig:
        s = self.scheduling
        return SchedulerConfig(ordering=s.ordering, placement=s.placement, preemption=s.preemption, backfill=s.backfill)

    def validate(self) -> list[str]:
        s = self.scheduling
        problems = [f"scheduling.{p}" for p in self.scheduler_config().validate()]
        placements = default_registry().names()
        if s.placement and s.placement not in placements:
            problems.append(f"scheduling.placement: unknown policy {s.placement!r} (known: {', '.join(placements)})")
        if s.on_node_loss not in NODE_LOSS_ACTIONS:
            problems.append(f"scheduling.on_node_loss: must be one of {NODE_LOSS_ACTIONS}, got {s.on_node_loss!r}")
        if s.debounce_s < 0:
            problems.append(f"scheduling.debounce_s: must not be negative, got {s.debounce_s}")
        if s.resync_s <= 0:
            problems.append(f"scheduling.resync_s: must be positive, got {s.resync_s}")
        if s.max_concurrent_requests < 1:
            problems.append(f"scheduling.max_concurrent_requests: must be at least 1, got {s.max_concurrent_requests}")
        if not 0 <= self.metrics.port <= 65535:
            problems.append(f"metrics.port: must be within 0..65535, got {self.metrics.port}")
        try:
            parse_selector(self.scope.node_selector)
        except SelectorError as exc:
            problems.append(f"scope.node_selector: {exc}")
        if self.peering.handover_s < 0:
            problems.append(f"peering.handover_s: must not be negative, got {self.peering.handover_s}")
        if not self.peering.name:
            problems.append("peering.name: must not be empty")
        return problems


def keys() -> dict[str, Any]:
    """Every dotted key with its default value (the reference table of docs/operator.md)."""
    root = OperatorSettings()
    out: dict[str, Any] = {}
    for section in dataclasses.fields(root):
        for f in dataclasses.fields(getattr(root, section.name)):
            out[f"{section.name}.{f.name}"] = getattr(getattr(root, section.name), f.name)
    return out


def env_name(key: str) -> str:
    return "GPULANE_" + key.replace(".", "_").upper()


def _convert(key: str, default: Any, raw: Any, source: str) -> Any:
    where = f"{key} (from {source})"
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{where}: expected true or false, got {raw!r}")
    if isinstance(default, tuple):
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        return tuple(str(i).strip() for i in items if str(i).strip())
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{where}: expected a {type(default).__name__}, got {raw!r}") from exc
    return str(raw)


def _flatten(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    known = keys()
    out: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, Mapping):
            raise SettingsError(f"{section} (from {source}): expected a mapping of settings")
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in known:
                raise SettingsError(f"{key} (from {source}): unknown setting; known: {', '.join(sorted(known))}")
            out[key] = value
    return out


def load(
    file_text: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> OperatorSettings:
    """Merge file < environment < flags over the defaults; SettingsError names each bad key."""
    known = keys()
    layers: list[tuple[str, dict[str, Any]]] = []
    if file_text:
        data = yaml.safe_load(file_text) or {}
        if not isinstance(data, Mapping):
            raise SettingsError("config file: expected a mapping at the top level")
        layers.append(("file", _flatten(data, "file")))
    env = env or {}
    layers.append(("environment", {k: env[env_name(k)] for k in known if env_name(k) in env}))
    unknown_flags = set(flags or {}) - set(known)
    if unknown_flags:
        raise SettingsError(f"unknown setting(s) {sorted(unknown_flags)}")
    layers.append(("flag", {k: v for k, v in (flags or {}).items() if v is not None}))
    values = dict(known)
    for source, layer in layers:
        for key, raw in layer.items():
            values[key] = _convert(key, known[key], raw, source)
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    root = OperatorSettings(
        scheduling=SchedulingSettings(**sections["scheduling"]),
        scope=ScopeSettings(**sections["scope"]),
        metrics=MetricsSettings(**sections["metrics"]),
        peering=PeeringSettings(**sections["peering"]),
    )
    problems = root.validate()
    if problems:
        raise SettingsError("; ".join(problems))
    return root
