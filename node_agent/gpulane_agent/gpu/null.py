"""NullBackend: a node with no usable GPU. The agent keeps running (metrics, registration) with nothing to offer."""

from __future__ import annotations

from gpulane_agent.gpu.backend import GpuError, GpuEvent, GpuInfo, GpuProcess, HardwareReadings, MemoryInfo


class NullBackend:
    """No GPUs; any per-GPU reading is an error because no index exists."""

    def __init__(self, reason: str = "no GPU backend configured") -> None:
        self.reason = reason

    @property
    def name(self) -> str:
        return "null"

    def gpus(self) -> tuple[GpuInfo, ...]:
        return ()

    def memory(self, index: int) -> MemoryInfo:
        raise GpuError("memory", index, f"null backend has no GPUs ({self.reason})")

    def utilization(self, index: int) -> float:
        raise GpuError("utilization", index, f"null backend has no GPUs ({self.reason})")

    def hardware(self, index: int) -> HardwareReadings:
        raise GpuError("hardware", index, f"null backend has no GPUs ({self.reason})")

    def processes(self, index: int) -> tuple[GpuProcess, ...]:
        raise GpuError("processes", index, f"null backend has no GPUs ({self.reason})")

    def poll_events(self) -> tuple[GpuEvent, ...]:
        return ()

    def shutdown(self) -> None:
        return None
