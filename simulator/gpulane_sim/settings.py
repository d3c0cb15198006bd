"""Simulator settings, loaded by :mod:`gpulane_core.settings`: flag > environment > YAML file > defaults.

Every source speaks the same names (``gpus``, ``gpu_memory``, ``bandwidth``, ``prefetch``, ``seed``,
``colocation_slowdown``, ``window_s``, ``placement``, ``gpus_per_node``, ``ga_population``,
``ga_survivors``, ``ga_generations``); the environment spells them ``GPULANE_SIM_<NAME>`` and the file
may be given by ``--config`` or ``GPULANE_SIM_CONFIG``. :class:`SimSettings` holds the values as
given (quantities parsed); :meth:`SimSettings.config` turns them into the engine's :class:`SimConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpulane_core import settings as core_settings
from gpulane_core.quantity import parse_bandwidth, parse_mib
from gpulane_core.settings import Problem, SettingsError

from gpulane_sim.config import SimConfig
from gpulane_sim.interference import CalibrationError, fit_lucid

COMPONENT = "sim"
ENV_CONFIG_FILE = core_settings.config_env(COMPONENT)  # GPULANE_SIM_CONFIG
_D = SimConfig()

__all__ = ["SettingsError", "SimSettings", "load_settings", "lucid_slowdown"]


def lucid_slowdown(path: Path) -> float:
    """The co-location slowdown per extra co-runner calibrated on Lucid's pairs (gpulane_sim.interference)."""
    try:
        return fit_lucid(path).slowdown
    except CalibrationError as exc:
        raise SettingsError(Problem("colocation_slowdown", str(exc))) from None


def _text(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    return lambda raw: parse(str(raw))


def _slowdown(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text != "lucid":
        float(text)  # ValueError names the bad text
    return text


@dataclass(frozen=True, slots=True)
class SimSettings:
    gpus: int = _D.gpus
    gpus_per_node: int = _D.gpus_per_node
    gpu_memory: int = field(default=_D.gpu_memory_mib, metadata={"parse": _text(parse_mib), "help": "e.g. 16Gi"})
    bandwidth: float = field(default=_D.bandwidth_bytes_s, metadata={"parse": _text(parse_bandwidth), "help": "e.g. 16GB/s"})
    prefetch: bool = _D.prefetch
    seed: int = _D.seed
    colocation_slowdown: str = field(
        default=str(_D.colocation_slowdown), metadata={"parse": _slowdown, "help": "factor, or 'lucid'"}
    )
    window_s: float = _D.window_s
    placement: str = _D.placement
    ga_population: int = _D.ga_population
    ga_survivors: int = _D.ga_survivors
    ga_generations: int = _D.ga_generations
    ga_time_budget_s: float = _D.ga_time_budget_s

    def config(self, data_dir: Path) -> SimConfig:
        """The engine's config ('lucid' calibrated from ``data_dir``); SettingsError if unusable."""
        slowdown = (
            lucid_slowdown(data_dir / "lucid_colocate_info.csv")
            if self.colocation_slowdown == "lucid"
            else float(self.colocation_slowdown)
        )
        config = SimConfig(
            gpus=self.gpus, gpus_per_node=self.gpus_per_node, gpu_memory_mib=self.gpu_memory,
            bandwidth_bytes_s=self.bandwidth, prefetch=self.prefetch, seed=self.seed,
            colocation_slowdown=slowdown, window_s=self.window_s, placement=self.placement,
            ga_population=self.ga_population, ga_survivors=self.ga_survivors, ga_generations=self.ga_generations,
            ga_time_budget_s=self.ga_time_budget_s,
        )  # fmt: skip
        problems = core_settings.validate_tree(config)
        if problems:
            raise SettingsError(*problems)
        return config


def load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    file: Path | None = None,
    data_dir: Path | None = None,
) -> SimConfig:
    """Defaults, then the file, then the environment, then flags (``None`` flags are unset)."""
    environ = os.environ if env is None else env
    path = file if file is not None else (Path(environ[ENV_CONFIG_FILE]) if environ.get(ENV_CONFIG_FILE) else None)
    text = None
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(Problem(str(path), f"cannot read settings: {exc.strerror or exc}")) from None
    settings = core_settings.load(
        SimSettings, COMPONENT, file_text=text, env=environ, flags=flags, file_name=str(path) if path else "file"
    )
    return settings.config(data_dir or Path("."))
