"""Simulator settings from flag > environment (``GPULANE_SIM_<NAME>``) > YAML file > defaults.

Every source speaks the same names (``gpus``, ``gpu_memory``, ``bandwidth``, ``prefetch``, ``seed``,
``colocation_slowdown``, ``window_s``, ``placement``, ``gpus_per_node``, ``ga_population``,
``ga_survivors``, ``ga_generations``); values are parsed once, here, with errors naming the source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpulane_core.quantity import QuantityError, parse_bandwidth, parse_mib

from gpulane_sim.config import SimConfig
from gpulane_sim.interference import CalibrationError, fit_lucid

ENV_PREFIX = "GPULANE_SIM_"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names its source and field."""


def lucid_slowdown(path: Path) -> float:
    """The co-location slowdown per extra co-runner calibrated on Lucid's pairs (gpulane_sim.interference)."""
    try:
        return fit_lucid(path).slowdown
    except CalibrationError as exc:
        raise SettingsError(f"colocation_slowdown: {exc}") from None


def _bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError(f"{text!r} is not on/off")


def _slowdown(data_dir: Path) -> Callable[[Any], float]:
    def parse(text: Any) -> float:
        if str(text).strip().lower() == "lucid":
            return lucid_slowdown(data_dir / "lucid_colocate_info.csv")
        return float(text)

    return parse


def _parsers(data_dir: Path) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """Setting name -> (SimConfig field, parser)."""
    return {
        "gpus": ("gpus", int),
        "gpus_per_node": ("gpus_per_node", int),
        "gpu_memory": ("gpu_memory_mib", parse_mib),
        "bandwidth": ("bandwidth_bytes_s", parse_bandwidth),
        "prefetch": ("prefetch", _bool),
        "seed": ("seed", int),
        "colocation_slowdown": ("colocation_slowdown", _slowdown(data_dir)),
        "window_s": ("window_s", float),
        "placement": ("placement", str),
        "ga_population": ("ga_population", int),
        "ga_survivors": ("ga_survivors", int),
        "ga_generations": ("ga_generations", int),
        "ga_time_budget_s": ("ga_time_budget_s", float),
    }


def _apply(config: SimConfig, values: Mapping[str, Any], source: str, data_dir: Path) -> SimConfig:
    parsers = _parsers(data_dir)
    changes: dict[str, Any] = {}
    for name, raw in values.items():
        key = name.replace("-", "_")
        if key not in parsers:
            raise SettingsError(f"{source}: {name}: unknown setting (known: {', '.join(sorted(parsers))})")
        field, parse = parsers[key]
        try:
            changes[field] = parse(raw)
        except (ValueError, QuantityError) as exc:
            raise SettingsError(f"{source}: {name}: {exc}") from None
    return replace(config, **changes)


def load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    file: Path | None = None,
    data_dir: Path | None = None,
) -> SimConfig:
    """Defaults, then the file, then the environment, then flags (``None`` flags are unset)."""
    data = data_dir or Path(".")
    config = SimConfig()
    if file is not None:
        import yaml

        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"{file}: cannot read settings: {exc}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"{file}: settings must be a mapping of name: value")
        config = _apply(config, loaded, str(file), data)
    environ = os.environ if env is None else env
    from_env = {k[len(ENV_PREFIX) :].lower(): v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    config = _apply(config, from_env, "environment", data)
    config = _apply(config, {k: v for k, v in flags.items() if v is not None}, "flag", data)
    problems = config.validate()
    if problems:
        raise SettingsError("; ".join(problems))
    return config
