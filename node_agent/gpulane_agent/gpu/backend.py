"""The GpuBackend port: what the agent needs to know about a node's GPUs, independent of NVML.

Every reading can fail for one GPU without failing the others, so readings are per GPU and raise
``GpuError`` (or its subclass ``GpuLostError`` for a GPU that fell off the bus, NVML's
``NVML_ERROR_GPU_IS_LOST``). Callers catch these per GPU: a broken GPU must never break a scrape.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class GpuError(RuntimeError):
    """A reading failed. ``operation`` names the call (``memory``, ``utilization``, ``hardware``...) for metrics."""

    def __init__(self, operation: str, index: int | None, message: str) -> None:
        where = f"GPU {index}" if index is not None else "backend"
        super().__init__(f"{operation} on {where}: {message}")
        self.operation = operation
        self.index = index


class GpuLostError(GpuError):
    """The GPU is gone (fell off the bus); every later reading of it fails the same way."""


class BackendInitError(RuntimeError):
    """The backend could not start (no driver, no library); the factory may fall back to null."""


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What does not change while the node runs."""

    index: int
    uuid: str
    model: str
    memory_total_bytes: int
    numa_node: int | None = None
    pci_bus_id: str = ""  # NVML's busId, e.g. 00000000:3B:00.0 (dcgm-exporter's pci_bus_id label); "" if unknown


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    total_bytes: int
    used_bytes: int
    free_bytes: int


@dataclass(frozen=True, slots=True)
class HardwareReadings:
    """Sensors and clocks of one GPU in NVML's own units; ``None`` where the board does not report it.

    NVML answers ``NVML_ERROR_NOT_SUPPORTED`` for some readings on some boards (power on many GeForce and
    vGPU guests, for example): that reading is ``None`` and its series is left out, never a made-up 0.
    """

    temperature_celsius: int | None  # nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)
    power_milliwatts: int | None  # nvmlDeviceGetPowerUsage
    sm_clock_mhz: int | None  # nvmlDeviceGetClockInfo(NVML_CLOCK_SM)
    memory_clock_mhz: int | None  # nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)
    memory_copy_percent: int | None  # nvmlDeviceGetUtilizationRates().memory: time memory was read or written


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """One compute process on one GPU and the device memory it holds."""

    pid: int
    used_bytes: int


class EventKind(enum.Enum):
    XID = "xid"
    GPU_LOST = "gpu-lost"


@dataclass(frozen=True, slots=True)
class GpuEvent:
    """A health event (NVML's XID critical errors and friends) for one GPU."""

    index: int
    kind: EventKind
    code: int = 0
    message: str = ""


# XIDs that do not mean the GPU is broken: NVIDIA's device plugin skips these application errors too
# (13 graphics engine exception, 31 memory page fault, 43 GPU stopped processing, 45 preemptive cleanup,
# 68 video processor exception, 109 context switch timeout).
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})


def event_makes_unhealthy(event: GpuEvent) -> bool:
    """Pure: does this event take the GPU out of service?"""
    if event.kind is EventKind.GPU_LOST:
        return True
    return event.code not in APPLICATION_XIDS


class GpuBackend(Protocol):
    """Read-only view of the node's GPUs. Implementations are safe to call from several threads."""

    @property
    def name(self) -> str: ...

    def gpus(self) -> tuple[GpuInfo, ...]:
        """Static inventory, indexed as the driver numbers GPUs. Empty for a node without GPUs."""
        ...

    def memory(self, index: int) -> MemoryInfo: ...

    def utilization(self, index: int) -> float:
        """Compute utilization 0..1 over the driver's last sample period."""
        ...

    def hardware(self, index: int) -> HardwareReadings:
        """Temperature, power, clocks and memory-copy utilization, read now (operation ``hardware``)."""
        ...

    def processes(self, index: int) -> tuple[GpuProcess, ...]: ...

    def poll_events(self) -> tuple[GpuEvent, ...]:
        """Health events since the previous call (non-blocking)."""
        ...

    def shutdown(self) -> None: ...
