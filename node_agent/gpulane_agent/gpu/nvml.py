"""NvmlBackend: the GpuBackend on real NVIDIA nodes, through nvidia-ml-py (``pynvml``).

This is the only module allowed to import ``pynvml`` (an import-linter contract). The module object is
injected (``NvmlBackend(nvml=...)``) so unit tests run it against a fake ``pynvml``-shaped object; the
production path imports the real one in ``NvmlBackend.load``. NVML is initialised once, per process,
never per scrape (HAMi's vGPUmonitor calls nvmlInit/Shutdown in every Collect; we do not).
"""

from __future__ import annotations

import threading
from typing import Any

from gpulane_agent.gpu.backend import (
    BackendInitError,
    EventKind,
    GpuError,
    GpuEvent,
    GpuInfo,
    GpuLostError,
    GpuProcess,
    HardwareReadings,
    MemoryInfo,
)

# NVML return codes we react to (nvml.h).
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_GPU_IS_LOST = 15
NVML_EVENT_TYPE_XID_CRITICAL_ERROR = 0x0000000000000008
# nvmlTemperatureSensors_t and nvmlClockType_t (nvml.h)
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2


class NvmlBackend:
    """Reads GPUs through an initialised NVML module object."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._lock = threading.Lock()  # NVML is thread-safe, but our handle cache and event set are not
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._infos = tuple(self._describe(i, h) for i, h in enumerate(self._handles))
        except nvml.NVMLError as exc:
            raise BackendInitError(f"NVML initialisation failed: {exc}") from exc
        self._event_set = self._register_events()

    @classmethod
    def load(cls) -> NvmlBackend:
        """Import the real nvidia-ml-py; a missing library or driver is a BackendInitError."""
        try:
            import pynvml
        except ImportError as exc:
            raise BackendInitError(f"nvidia-ml-py is not installed: {exc}") from exc
        try:
            return cls(pynvml)
        except OSError as exc:  # libnvidia-ml.so missing surfaces as NVMLError_LibraryNotFound/OSError
            raise BackendInitError(f"NVML library not found: {exc}") from exc

    @property
    def name(self) -> str:
        return "nvml"

    def gpus(self) -> tuple[GpuInfo, ...]:
        return self._infos

    def memory(self, index: int) -> MemoryInfo:
        info = self._call("memory", index, self._nvml.nvmlDeviceGetMemoryInfo)
        return MemoryInfo(total_bytes=int(info.total), used_bytes=int(info.used), free_bytes=int(info.free))

    def utilization(self, index: int) -> float:
        rates = self._call("utilization", index, self._nvml.nvmlDeviceGetUtilizationRates)
        return max(0.0, min(1.0, float(rates.gpu) / 100.0))

    def hardware(self, index: int) -> HardwareReadings:
        """Each reading separately: one the board does not support is None; a lost GPU raises for all."""
        nvml = self._nvml
        return HardwareReadings(
            temperature_celsius=self._optional(index, lambda h: nvml.nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU)),
            power_milliwatts=self._optional(index, nvml.nvmlDeviceGetPowerUsage),
            sm_clock_mhz=self._optional(index, lambda h: nvml.nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM)),
            memory_clock_mhz=self._optional(index, lambda h: nvml.nvmlDeviceGetClockInfo(h, NVML_CLOCK_MEM)),
            memory_copy_percent=self._optional(index, lambda h: nvml.nvmlDeviceGetUtilizationRates(h).memory),
        )

    def processes(self, index: int) -> tuple[GpuProcess, ...]:
        procs = self._call("processes", index, self._nvml.nvmlDeviceGetComputeRunningProcesses)
        # usedGpuMemory is None when the driver cannot tell (e.g. under MPS without permissions).
        return tuple(GpuProcess(int(p.pid), int(p.usedGpuMemory or 0)) for p in procs)

    def poll_events(self) -> tuple[GpuEvent, ...]:
        if self._event_set is None:
            return ()
        events: list[GpuEvent] = []
        with self._lock:
            while True:
                try:
                    data = self._nvml.nvmlEventSetWait_v2(self._event_set, 0)
                except self._nvml.NVMLError as exc:
                    if _code(exc) == NVML_ERROR_TIMEOUT:
                        break
                    if _code(exc) == NVML_ERROR_GPU_IS_LOST:
                        events.extend(GpuEvent(i, EventKind.GPU_LOST, message=str(exc)) for i in self._lost())
                        break
                    raise GpuError("events", None, str(exc)) from exc
                index = self._index_of(data.device)
                if index is not None:
                    code = int(data.eventData)
                    events.append(GpuEvent(index, EventKind.XID, code=code, message=f"Xid {code}"))
        return tuple(events)

    def shutdown(self) -> None:
        try:
            if self._event_set is not None:
                self._nvml.nvmlEventSetFree(self._event_set)
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            return None

    # -- internals ----------------------------------------------------------------------------------

    def _call(self, operation: str, index: int, fn: Any) -> Any:
        if not 0 <= index < len(self._handles):
            raise GpuError(operation, index, f"no such GPU (node has {len(self._handles)})")
        try:
            return fn(self._handles[index])
        except self._nvml.NVMLError as exc:
            if _code(exc) == NVML_ERROR_GPU_IS_LOST:
                raise GpuLostError(operation, index, str(exc)) from exc
            raise GpuError(operation, index, str(exc)) from exc

    def _optional(self, index: int, fn: Any) -> int | None:
        """One hardware reading; NVML_ERROR_NOT_SUPPORTED means this board has no such sensor."""
        try:
            return int(self._call("hardware", index, fn))
        except GpuError as exc:
            if _code(exc.__cause__) == NVML_ERROR_NOT_SUPPORTED:
                return None
            raise

    def _describe(self, index: int, handle: Any) -> GpuInfo:
        nvml = self._nvml
        numa: int | None = None
        getter = getattr(nvml, "nvmlDeviceGetNumaNodeId", None)
        if getter is not None:
            try:
                numa = int(getter(handle))
            except nvml.NVMLError:
                numa = None  # not supported on this driver/board: topology stays unknown
        return GpuInfo(
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            model=_text(nvml.nvmlDeviceGetName(handle)),
            memory_total_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            numa_node=numa if numa is not None and numa >= 0 else None,
            pci_bus_id=self._bus_id(handle),
        )

    def _bus_id(self, handle: Any) -> str:
        try:
            return _text(self._nvml.nvmlDeviceGetPciInfo(handle).busId)
        except self._nvml.NVMLError:
            return ""  # the label is then empty, as dcgm-exporter renders an unknown bus id

    def _register_events(self) -> Any:
        nvml = self._nvml
        try:
            event_set = nvml.nvmlEventSetCreate()
            for handle in self._handles:
                nvml.nvmlDeviceRegisterEvents(handle, NVML_EVENT_TYPE_XID_CRITICAL_ERROR, event_set)
        except nvml.NVMLError:
            return None  # events unsupported (e.g. some vGPU guests): health then comes from readings only
        return event_set

    def _index_of(self, handle: Any) -> int | None:
        for i, h in enumerate(self._handles):
            if h == handle:
                return i
        return None

    def _lost(self) -> list[int]:
        lost = []
        for i, handle in enumerate(self._handles):
            try:
                self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except self._nvml.NVMLError as exc:
                if _code(exc) == NVML_ERROR_GPU_IS_LOST:
                    lost.append(i)
        return lost


def _code(exc: BaseException | None) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
