"""Operator settings: one frozen dataclass tree, loaded by :mod:`gpulane_core.settings`.

Precedence flag > environment > file. The file is YAML with the same nesting as the tree (mount it
from a ConfigMap); environment variables are ``GPULANE_OPERATOR_<SECTION>_<FIELD>``
(``GPULANE_OPERATOR_SCHEDULING_ORDERING=srtf``); flags are given as dotted keys
(``scheduling.ordering``). The pre-0.2 names ``GPULANE_<SECTION>_<FIELD>`` are still read as
deprecated aliases (the scheme's own name wins). Every bad value is reported with its key and source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpulane_core import settings as core_settings
from gpulane_core.registry import default_registry
from gpulane_core.scheduler import SchedulerConfig
from gpulane_core.settings import SettingsError

from gpulane_operator.inventory import SelectorError, parse_selector

LIVE_S = 2.0  # a standalone replica schedules new jobs this long after its last watch event
MIN_HANDOVER_S = 0.5  # with peering (see PeeringSettings.live_s)

COMPONENT = "operator"
ENV_CONFIG_FILE = core_settings.config_env(COMPONENT)  # GPULANE_OPERATOR_CONFIG
NODE_LOSS_ACTIONS = ("reschedule", "fail")
ALLOCATION_MODES = ("device-plugin", "dra")

__all__ = ["OperatorSettings", "SettingsError", "deprecated_env_names", "env_name", "keys", "load"]


@dataclass(frozen=True, slots=True)
class SchedulingSettings:
    ordering: str = "fifo"  # fifo | srtf | pack | fair | weight | gpulane (gpulane_core.ordering)
    placement: str = "gpulane"  # a placement profile of gpulane_core.registry
    preemption: bool = True  # guaranteed jobs may preempt best-effort ones
    backfill: bool = True  # later jobs may pass one that does not fit
    debounce_s: float = 0.05  # gather watch events this long before a cycle
    resync_s: float = 5.0  # run a cycle at least this often while jobs are pending
    on_node_loss: str = "reschedule"  # reschedule | fail
    node_loss_grace_s: float = 20.0  # a node NotReady this long is lost: its jobs follow on_node_loss
    max_concurrent_requests: int = 32  # API calls in flight per cycle
    allocation: str = "device-plugin"  # device-plugin | dra: the mode of jobs without spec.allocation


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

    def live_s(self) -> float:
        """How long after its last watch event a replica keeps scheduling new jobs (runtime.CycleRunner).
        With peering it is under half the handover: a replica that peering paused (kopf closes its watch
        streams) has stopped before a replica that started with it, or after it, may place anything."""
        return LIVE_S if self.standalone else min(LIVE_S, 0.5 * self.handover_s)


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
        if s.allocation not in ALLOCATION_MODES:
            problems.append(f"scheduling.allocation: must be one of {ALLOCATION_MODES}, got {s.allocation!r}")
        if s.node_loss_grace_s < 0:
            problems.append(f"scheduling.node_loss_grace_s: must not be negative, got {s.node_loss_grace_s}")
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
        elif not self.peering.standalone and self.peering.handover_s < MIN_HANDOVER_S:
            problems.append(
                f"peering.handover_s: must be at least {MIN_HANDOVER_S} s with peering (a paused replica stops"
                f" scheduling within half of it), got {self.peering.handover_s}"
            )
        if not self.peering.name:
            problems.append("peering.name: must not be empty")
        return problems


def keys() -> dict[str, Any]:
    """Every dotted key with its default value (the reference table of docs/operator.md)."""
    return core_settings.keys(OperatorSettings)


def env_name(key: str) -> str:
    return core_settings.env_name(COMPONENT, key)


# Keys added after the 0.2 rename never had an unprefixed variable.
NEWER_THAN_THE_RENAME = frozenset({"scheduling.node_loss_grace_s", "scheduling.allocation"})


def deprecated_env_names() -> dict[str, str]:
    """The pre-0.2 variables (``GPULANE_<SECTION>_<FIELD>``), still read: old name -> key."""
    return {"GPULANE_" + key.replace(".", "_").upper(): key for key in keys() if key not in NEWER_THAN_THE_RENAME}


def load(
    file_text: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> OperatorSettings:
    """Merge file < environment < flags over the defaults; SettingsError names each bad key."""
    return core_settings.load(
        OperatorSettings, COMPONENT, file_text=file_text, env=env, flags=flags, aliases=deprecated_env_names()
    )
