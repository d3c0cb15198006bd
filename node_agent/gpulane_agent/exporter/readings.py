"""One scrape's readings of every GPU, taken once and shared by the gpulane_* and DCGM_FI_* families.

A reading that fails leaves its field ``None`` (its series are then absent from this scrape, never a
made-up 0) and increments ``gpulane_backend_errors_total{operation}``; a lost GPU is also unhealthy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gpulane_agent.gpu.backend import (
    GpuBackend,
    GpuError,
    GpuInfo,
    GpuLostError,
    HardwareReadings,
    MemoryInfo,
)
from gpulane_agent.health import HealthBoard
from gpulane_agent.stats import AgentStats

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GpuSample:
    info: GpuInfo
    healthy: bool
    memory: MemoryInfo | None
    utilization: float | None  # 0..1
    hardware: HardwareReadings | None


def read_samples(backend: GpuBackend, board: HealthBoard, stats: AgentStats) -> tuple[GpuSample, ...]:
    gpus = backend.gpus()
    health = board.snapshot(g.index for g in gpus)
    return tuple(_read_one(backend, gpu, health.get(gpu.index, True), stats) for gpu in gpus)


def _read_one(backend: GpuBackend, gpu: GpuInfo, healthy: bool, stats: AgentStats) -> GpuSample:
    lost = False

    def attempt(read: Callable[[int], T]) -> T | None:
        nonlocal lost
        try:
            return read(gpu.index)
        except GpuError as exc:
            stats.backend_error(exc.operation)
            lost = lost or isinstance(exc, GpuLostError)
            return None

    memory = attempt(backend.memory)
    utilization = attempt(backend.utilization)
    hardware = attempt(backend.hardware)
    return GpuSample(gpu, healthy and not lost, memory, utilization, hardware)
