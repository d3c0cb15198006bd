"""FakeBackend: a faithful, scripted stand-in for NVML so the agent runs and is tested without GPUs.

It models what the agent reads from NVML: GPUs with model, UUID and memory; memory used is the sum of
the registered processes plus a reserved amount (driver context); per-process memory; utilization;
hardware readings (temperature, power, clocks, memory-copy utilization; each may be unsupported); and faults that behave like NVML's (a lost GPU raises ``GpuLostError`` on every reading, a chosen call
raises ``GpuError``, XID events surface through ``poll_events``). Tests and the kind demo drive it by
registering and unregistering pids; real processes (a workload in a container) report themselves
through ``ProcessFiles`` (``gpulane_core.fakegpu``) and are counted exactly like registered ones, at
their host PID. All state sits behind one lock: the scrape thread and the asyncio loop read it
concurrently.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from gpulane_core.quantity import MIB

from gpulane_agent.gpu.backend import (
    EventKind,
    GpuError,
    GpuEvent,
    GpuInfo,
    GpuLostError,
    GpuProcess,
    HardwareReadings,
    MemoryInfo,
)
from gpulane_agent.gpu.fake_processes import ProcessFiles
from gpulane_agent.gpu.fake_spec import FakeSpec, FakeSpecError, FaultKind, default_spec, parse_spec


@dataclass(slots=True)
class _GpuState:
    info: GpuInfo
    utilization: float
    hardware: HardwareReadings
    lost: bool = False
    failing: set[str] = field(default_factory=set)
    processes: dict[int, int] = field(default_factory=dict)  # pid -> bytes


class FakeBackend:
    """Deterministic fake GPUs built from a ``FakeSpec``."""

    def __init__(self, spec: FakeSpec, process_files: ProcessFiles | None = None) -> None:
        self._lock = threading.Lock()
        self._files = process_files
        self._reserved_bytes = spec.reserved_mib * MIB
        self._gpus = [
            _GpuState(
                info=GpuInfo(i, g.uuid, g.model, g.memory_mib * MIB, g.numa_node, g.pci_bus_id),
                utilization=g.utilization,
                hardware=g.hardware,
            )
            for i, g in enumerate(spec.gpus)
        ]
        self._events: list[GpuEvent] = []
        for proc in spec.processes:
            self.register_process(proc.gpu, proc.pid, proc.memory_mib)
        for fault in spec.faults:
            if fault.kind is FaultKind.LOST:
                self.lose_gpu(fault.gpu)
            elif fault.kind is FaultKind.NVML_ERROR:
                self.fail_call(fault.gpu, fault.operation)
            else:
                self.emit_xid(fault.gpu, fault.code)

    @classmethod
    def default(cls, node_name: str, process_files: ProcessFiles | None = None) -> FakeBackend:
        return cls(default_spec(node_name), process_files)

    @classmethod
    def from_file(cls, path: Path, node_name: str, process_files: ProcessFiles | None = None) -> FakeBackend:
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise FakeSpecError(f"fake_config: cannot read {path}: {exc}") from exc
        return cls(parse_spec(raw, node_name), process_files)

    @property
    def name(self) -> str:
        return "fake"

    # -- GpuBackend ---------------------------------------------------------------------------------

    def gpus(self) -> tuple[GpuInfo, ...]:
        with self._lock:
            return tuple(g.info for g in self._gpus)

    def memory(self, index: int) -> MemoryInfo:
        reported = self._reported()
        with self._lock:
            gpu = self._read(index, "memory")
            total = gpu.info.memory_total_bytes
            used = min(total, self._reserved_bytes + sum(_pids(gpu, reported).values()))
            return MemoryInfo(total_bytes=total, used_bytes=used, free_bytes=total - used)

    def utilization(self, index: int) -> float:
        with self._lock:
            return self._read(index, "utilization").utilization

    def hardware(self, index: int) -> HardwareReadings:
        with self._lock:
            return self._read(index, "hardware").hardware

    def processes(self, index: int) -> tuple[GpuProcess, ...]:
        reported = self._reported()
        with self._lock:
            gpu = self._read(index, "processes")
            return tuple(GpuProcess(pid, used) for pid, used in sorted(_pids(gpu, reported).items()))

    def poll_events(self) -> tuple[GpuEvent, ...]:
        with self._lock:
            events, self._events = tuple(self._events), []
            return events

    def shutdown(self) -> None:
        return None

    # -- driving the fake ---------------------------------------------------------------------------

    def register_process(self, index: int, pid: int, used_mib: int) -> None:
        """A process on GPU ``index`` now holds ``used_mib``; re-registering updates the amount."""
        if used_mib < 0:
            raise ValueError(f"used_mib: must not be negative, got {used_mib}")
        with self._lock:
            self._state(index).processes[pid] = used_mib * MIB

    def unregister_process(self, pid: int) -> None:
        """The process exited: its memory is freed on every GPU."""
        with self._lock:
            for gpu in self._gpus:
                gpu.processes.pop(pid, None)

    def set_utilization(self, index: int, ratio: float) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio: must be in 0..1, got {ratio}")
        with self._lock:
            self._state(index).utilization = ratio

    def set_hardware(self, index: int, readings: HardwareReadings) -> None:
        """What the GPU's sensors and clocks read from now on (``None`` fields: not supported)."""
        with self._lock:
            self._state(index).hardware = readings

    def lose_gpu(self, index: int) -> None:
        """The GPU falls off the bus: a GPU_LOST event, then every reading raises GpuLostError."""
        with self._lock:
            gpu = self._state(index)
            if not gpu.lost:
                gpu.lost = True
                self._events.append(GpuEvent(index, EventKind.GPU_LOST, message="GPU is lost"))

    def fail_call(self, index: int, operation: str) -> None:
        """Make ``operation`` (memory, utilization, processes, hardware) raise GpuError on this GPU."""
        with self._lock:
            self._state(index).failing.add(operation)

    def emit_xid(self, index: int, code: int) -> None:
        with self._lock:
            self._state(index)
            self._events.append(GpuEvent(index, EventKind.XID, code=code, message=f"Xid {code}"))

    def heal(self, index: int) -> None:
        """Clear faults on a GPU (a reset or a replaced card)."""
        with self._lock:
            gpu = self._state(index)
            gpu.lost = False
            gpu.failing.clear()

    # -- internals (caller holds the lock, except _reported) -----------------------------------------

    def _reported(self) -> dict[str, dict[int, int]]:
        """Processes that report themselves (GPU UUID -> host PID -> bytes); read outside the lock."""
        return self._files.read() if self._files is not None else {}

    def _state(self, index: int) -> _GpuState:
        if not 0 <= index < len(self._gpus):
            raise GpuError("lookup", index, f"no such GPU (node has {len(self._gpus)})")
        return self._gpus[index]

    def _read(self, index: int, operation: str) -> _GpuState:
        gpu = self._state(index)
        if gpu.lost:
            raise GpuLostError(operation, index, "GPU is lost (NVML_ERROR_GPU_IS_LOST)")
        if operation in gpu.failing:
            raise GpuError(operation, index, "injected NVML error (NVML_ERROR_UNKNOWN)")
        return gpu


def _pids(gpu: _GpuState, reported: dict[str, dict[int, int]]) -> dict[int, int]:
    """Registered and reporting processes on this GPU (a reporting one wins if a PID is both)."""
    return {**gpu.processes, **reported.get(gpu.info.uuid, {})}
