"""NvmlBackend against a fake pynvml-shaped module object (no GPU here), and the backend factory."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from gpulane_agent.gpu import nvml as nvml_module
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
    unsupported: set[str] = field(default_factory=set)  # calls answering NVML_ERROR_NOT_SUPPORTED
    failing: set[str] = field(default_factory=set)  # calls answering NVML_ERROR_UNKNOWN

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

    def _check(self, h: str, call: str = "") -> int:
        i = int(h[1:])
        if i in self.lost:
            raise NVMLError(15)
        if call in self.unsupported:
            raise NVMLError(3)
        if call in self.failing:
            raise NVMLError(999)
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
        return SimpleNamespace(gpu=37 + self._check(h), memory=11 + self._check(h))

    def nvmlDeviceGetPciInfo(self, h: str) -> Any:
        return SimpleNamespace(busId=f"00000000:{0x3B + self._check(h):02X}:00.0".encode(), domain=0)

    def nvmlDeviceGetTemperature(self, h: str, sensor: int) -> int:
        if sensor != 0:  # NVML_TEMPERATURE_GPU is the only sensor
            raise NVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT
        return 60 + self._check(h, "temperature")

    def nvmlDeviceGetPowerUsage(self, h: str) -> int:
        return 250_123 + self._check(h, "power")  # milliwatts

    def nvmlDeviceGetClockInfo(self, h: str, clock_type: int) -> int:
        i = self._check(h, "clock")
        return {0: 1755, 1: 1980, 2: 2619, 3: 1545}[clock_type] + i  # graphics, SM, memory, video (MHz)

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


def test_reads_temperature_power_clocks_and_memory_copy_utilization() -> None:
    nvml = NvmlBackend(FakeNvml())
    hw = nvml.hardware(1)
    assert hw.temperature_celsius == 61
    assert hw.power_milliwatts == 250_124
    assert hw.sm_clock_mhz == 1981  # NVML_CLOCK_SM, not the graphics clock
    assert hw.memory_clock_mhz == 2620
    assert hw.memory_copy_percent == 12
    assert nvml.gpus()[1].pci_bus_id == "00000000:3C:00.0"


def test_an_unsupported_reading_is_none_and_a_failing_one_is_a_hardware_error() -> None:
    fake = FakeNvml(unsupported={"power"})
    nvml = NvmlBackend(fake)
    hw = nvml.hardware(0)
    assert hw.power_milliwatts is None and hw.temperature_celsius == 60 and hw.sm_clock_mhz == 1980
    fake.failing = {"clock"}
    with pytest.raises(GpuError, match="hardware on GPU 0") as caught:
        nvml.hardware(0)
    assert caught.value.operation == "hardware"
    fake.failing = set()
    fake.lost = frozenset({0})
    with pytest.raises(GpuLostError):
        nvml.hardware(0)


def test_the_fake_has_pynvmls_api_shape() -> None:
    """Every NVML function the fake offers exists in the real nvidia-ml-py, taking the same required arguments."""
    pynvml = pytest.importorskip("pynvml")
    offered = [name for name in dir(FakeNvml) if name.startswith("nvml")]
    assert {"nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetClockInfo",
            "nvmlDeviceGetPciInfo", "nvmlDeviceGetUtilizationRates"} <= set(offered)  # fmt: skip
    for name in offered:
        real = inspect.signature(getattr(pynvml, name))
        fake = inspect.signature(getattr(FakeNvml(), name))
        required = [p for p in real.parameters.values() if p.default is inspect.Parameter.empty]
        assert len(required) == len(fake.parameters), (name, real, fake)
    assert (pynvml.NVML_TEMPERATURE_GPU, pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM) == (
        nvml_module.NVML_TEMPERATURE_GPU, nvml_module.NVML_CLOCK_SM, nvml_module.NVML_CLOCK_MEM)
    assert pynvml.NVML_ERROR_NOT_SUPPORTED == nvml_module.NVML_ERROR_NOT_SUPPORTED
    assert pynvml.NVML_ERROR_GPU_IS_LOST == nvml_module.NVML_ERROR_GPU_IS_LOST
    # the fields NvmlBackend reads off pynvml's structures
    assert {"busId"} <= {f for f, _ in pynvml.nvmlPciInfo_t._fields_}
    assert {"gpu", "memory"} <= {f for f, _ in pynvml.c_nvmlUtilization_t._fields_}
    assert {"total", "used", "free"} <= {f for f, _ in pynvml.c_nvmlMemory_t._fields_}
