"""NvmlBackend against a fake pynvml-shaped module object (no GPU here), and the backend factory."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from gpulane_agent.gpu.backend import BackendInitError, EventKind, GpuError, GpuLostError
from gpulane_agent.gpu.factory import make_backend
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.null import NullBackend
from gpulane_agent.gpu.nvml import NvmlBackend
from gpulane_agent.settings import BackendConfig, BackendKind
from gpulane_core.quantity import MIB


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeNvml:
    """Just the pynvml functions NvmlBackend calls, with switchable failures."""

    count: int = 2
    init_error: int | None = None
    lost: frozenset[int] = frozenset()
    pending_events: list[Any] | None = None

    NVMLError = NVMLError

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        return None

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> str:
        return f"h{i}"

    def _check(self, h: str) -> int:
        i = int(h[1:])
        if i in self.lost:
            raise NVMLError(15)
        return i

    def nvmlDeviceGetUUID(self, h: str) -> bytes:
        return f"GPU-{self._check(h):08d}".encode()

    def nvmlDeviceGetName(self, h: str) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetNumaNodeId(self, h: str) -> int:
        return self._check(h) % 2

    def nvmlDeviceGetMemoryInfo(self, h: str) -> Any:
        self._check(h)
        return SimpleNamespace(total=80 * 1024 * MIB, used=5 * MIB, free=80 * 1024 * MIB - 5 * MIB)

    def nvmlDeviceGetUtilizationRates(self, h: str) -> Any:
        return SimpleNamespace(gpu=37 + self._check(h), memory=1)

    def nvmlDeviceGetComputeRunningProcesses(self, h: str) -> list[Any]:
        self._check(h)
        return [SimpleNamespace(pid=100, usedGpuMemory=7 * MIB), SimpleNamespace(pid=101, usedGpuMemory=None)]

    def nvmlEventSetCreate(self) -> str:
        return "set"

    def nvmlDeviceRegisterEvents(self, h: str, mask: int, event_set: str) -> None:
        return None

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> Any:
        if self.pending_events:
            return self.pending_events.pop(0)
        raise NVMLError(10)  # NVML_ERROR_TIMEOUT

    def nvmlEventSetFree(self, event_set: str) -> None:
        return None


def test_reads_inventory_memory_utilization_and_processes() -> None:
    nvml = NvmlBackend(FakeNvml())
    gpus = nvml.gpus()
    assert [(g.index, g.uuid, g.numa_node) for g in gpus] == [(0, "GPU-00000000", 0), (1, "GPU-00000001", 1)]
    assert gpus[0].memory_total_bytes == 80 * 1024 * MIB
    assert nvml.memory(1).used_bytes == 5 * MIB
    assert nvml.utilization(1) == pytest.approx(0.38)
    assert [(p.pid, p.used_bytes) for p in nvml.processes(0)] == [(100, 7 * MIB), (101, 0)]


def test_gpu_lost_maps_to_gpu_lost_error_and_other_errors_to_gpu_error() -> None:
    fake = FakeNvml()
    nvml = NvmlBackend(fake)
    fake.lost = frozenset({1})
    with pytest.raises(GpuLostError):
        nvml.memory(1)
    with pytest.raises(GpuError, match="no such GPU"):
        nvml.memory(7)


def test_xid_events_are_polled_without_blocking() -> None:
    fake = FakeNvml(pending_events=[SimpleNamespace(device="h1", eventType=8, eventData=79)])
    nvml = NvmlBackend(fake)
    events = nvml.poll_events()
    assert [(e.index, e.kind, e.code) for e in events] == [(1, EventKind.XID, 79)]
    assert nvml.poll_events() == ()


def test_init_failure_is_backend_init_error_and_the_factory_falls_back_unless_told_not_to() -> None:
    with pytest.raises(BackendInitError):
        NvmlBackend(FakeNvml(init_error=9))

    def broken() -> NvmlBackend:
        return NvmlBackend(FakeNvml(init_error=9))

    fallback = make_backend(BackendConfig(kind=BackendKind.NVML, fail_on_init=False), "n", load_nvml=broken)
    assert isinstance(fallback, NullBackend)
    assert fallback.gpus() == ()
    with pytest.raises(BackendInitError):
        make_backend(BackendConfig(kind=BackendKind.NVML, fail_on_init=True), "n", load_nvml=broken)


def test_factory_builds_fake_and_null() -> None:
    assert isinstance(make_backend(BackendConfig(kind=BackendKind.FAKE, fake_process_dir=""), "n"), FakeBackend)
    assert isinstance(make_backend(BackendConfig(kind=BackendKind.NULL), "n"), NullBackend)


def test_event_wait_reporting_gpu_lost_names_the_lost_gpus_and_shutdown_is_quiet() -> None:
    class LosingNvml(FakeNvml):
        def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> Any:
            raise NVMLError(15)

    fake = LosingNvml()
    nvml = NvmlBackend(fake)
    fake.lost = frozenset({0})
    assert [(e.index, e.kind) for e in nvml.poll_events()] == [(0, EventKind.GPU_LOST)]
    nvml.shutdown()
