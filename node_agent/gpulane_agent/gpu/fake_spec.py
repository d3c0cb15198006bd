"""The fake GPU backend's YAML spec (``version: v1``): which GPUs a fake node has and which faults it shows.

Parsing is pure and strict: a bad field raises ``FakeSpecError`` naming the field and the reason, so a
typo in a test fixture or a kind-cluster config fails loudly instead of yielding a different node.

    version: v1
    reserved_mib: 256            # driver/context memory counted as used on every GPU
    gpus:                        # omitted: 4 x Fake-GPU-16G (16 GiB), UUIDs derived from the node name
      - model: Fake-GPU-16G
        memory: 16Gi
        uuid: GPU-...            # optional; derived from node name + index when omitted
        numa_node: 0             # optional
        utilization: 0.25        # optional, 0..1
        pci_bus_id: 00000000:3B:00.0   # optional; 00000000:<index+1>:00.0 when omitted
        temperature_celsius: 41  # optional hardware readings (defaults below); null: the board does not
        power_watts: 38.5        #   report it (NVML_ERROR_NOT_SUPPORTED), so its series is absent
        sm_clock_mhz: 1590
        memory_clock_mhz: 5000
        memory_copy_utilization: 0.1   # 0..1, NVML's utilization.memory
        count: 2                 # optional; repeats this entry
    processes:                   # optional: processes present from the start (tests add more at run time)
      - {gpu: 0, pid: 4242, memory: 2Gi}
    faults:
      - {gpu: 1, kind: lost}                          # every reading of GPU 1 raises GpuLostError
      - {gpu: 0, kind: nvml-error, operation: memory} # that call fails on GPU 0
      - {gpu: 2, kind: xid, code: 79}                 # one XID event is reported by poll_events()
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpulane_core.quantity import QuantityError, parse_mib

from gpulane_agent.gpu.backend import HardwareReadings

DEFAULT_GPU_COUNT = 4
DEFAULT_MODEL = "Fake-GPU-16G"
DEFAULT_MEMORY_MIB = 16 * 1024
DEFAULT_RESERVED_MIB = 256
# Plausible readings of an idle 16 GiB data-centre GPU (a T4's clocks); each is configurable per GPU.
DEFAULT_HARDWARE = HardwareReadings(
    temperature_celsius=41, power_milliwatts=38_500, sm_clock_mhz=1590, memory_clock_mhz=5000, memory_copy_percent=0
)
# The per-GPU readings that can fail. The inventory (gpus()) cannot: NVML reads it once at start-up.
OPERATIONS = frozenset({"memory", "utilization", "processes", "hardware"})
_GPU_FIELDS = frozenset({
    "model", "memory", "uuid", "numa_node", "utilization", "count", "pci_bus_id",
    "temperature_celsius", "power_watts", "sm_clock_mhz", "memory_clock_mhz", "memory_copy_utilization",
})  # fmt: skip
_PCI_BUS_ID = re.compile(r"^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]$")
# A fixed namespace so UUIDs are stable across runs and machines for the same node name.
_UUID_NAMESPACE = uuid.UUID("6f1c5d2e-4b8a-5c3e-9d7f-0a1b2c3d4e5f")


class FakeSpecError(ValueError):
    """The fake backend's spec is malformed; the message names the field."""


class FaultKind(enum.Enum):
    LOST = "lost"
    NVML_ERROR = "nvml-error"
    XID = "xid"


@dataclass(frozen=True, slots=True)
class FakeGpuSpec:
    model: str
    memory_mib: int
    uuid: str
    numa_node: int | None = None
    utilization: float = 0.0
    pci_bus_id: str = ""
    hardware: HardwareReadings = DEFAULT_HARDWARE


@dataclass(frozen=True, slots=True)
class FaultSpec:
    gpu: int
    kind: FaultKind
    operation: str = ""
    code: int = 0


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    gpu: int
    pid: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class FakeSpec:
    gpus: tuple[FakeGpuSpec, ...]
    faults: tuple[FaultSpec, ...] = ()
    processes: tuple[ProcessSpec, ...] = ()
    reserved_mib: int = DEFAULT_RESERVED_MIB
    version: str = "v1"


def derive_uuid(node_name: str, index: int) -> str:
    """Deterministic NVML-shaped UUID (``GPU-`` + 36 chars) from the node name and GPU index."""
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{node_name}/{index}')}"


def derive_pci_bus_id(index: int) -> str:
    """NVML-shaped bus id (domain:bus:device.function, upper-case hex), one bus per GPU."""
    return f"00000000:{index + 1:02X}:00.0"


def default_spec(node_name: str) -> FakeSpec:
    """4 GPUs of 16 GiB, model Fake-GPU-16G, UUIDs derived from ``node_name``, no faults."""
    gpus = tuple(
        FakeGpuSpec(model=DEFAULT_MODEL, memory_mib=DEFAULT_MEMORY_MIB, uuid=derive_uuid(node_name, i),
                    pci_bus_id=derive_pci_bus_id(i))
        for i in range(DEFAULT_GPU_COUNT)
    )  # fmt: skip
    return FakeSpec(gpus=gpus)


def parse_spec(raw: Any, node_name: str) -> FakeSpec:
    """A YAML-loaded mapping to a FakeSpec; ``None`` (empty file) gives the default spec."""
    if raw is None:
        return default_spec(node_name)
    if not isinstance(raw, Mapping):
        raise FakeSpecError(f"fake spec: must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - {"version", "gpus", "faults", "reserved_mib", "processes"}
    if unknown:
        raise FakeSpecError(f"fake spec: unknown field(s) {sorted(unknown)}")
    version = raw.get("version", "v1")
    if version != "v1":
        raise FakeSpecError(f"version: only v1 is supported, got {version!r}")
    reserved = _int(raw.get("reserved_mib", DEFAULT_RESERVED_MIB), "reserved_mib", minimum=0)
    raw_gpus = raw.get("gpus")
    gpus = default_spec(node_name).gpus if raw_gpus is None else _parse_gpus(raw_gpus, node_name)
    faults = tuple(_parse_fault(f, i, len(gpus)) for i, f in enumerate(_list(raw.get("faults", []), "faults")))
    processes = tuple(
        _parse_process(p, i, len(gpus)) for i, p in enumerate(_list(raw.get("processes", []), "processes"))
    )
    for gpu in gpus:
        if reserved > gpu.memory_mib:
            raise FakeSpecError(f"reserved_mib: {reserved} exceeds GPU memory {gpu.memory_mib} MiB")
    return FakeSpec(gpus=gpus, faults=faults, processes=processes, reserved_mib=reserved)


def _parse_gpus(raw_gpus: Any, node_name: str) -> tuple[FakeGpuSpec, ...]:
    gpus: list[FakeGpuSpec] = []
    for i, entry in enumerate(_list(raw_gpus, "gpus")):
        where = f"gpus[{i}]"
        if not isinstance(entry, Mapping):
            raise FakeSpecError(f"{where}: must be a mapping")
        unknown = set(entry) - _GPU_FIELDS
        if unknown:
            raise FakeSpecError(f"{where}: unknown field(s) {sorted(unknown)}")
        count = _int(entry.get("count", 1), f"{where}.count", minimum=1)
        for unique in ("uuid", "pci_bus_id"):
            if count > 1 and unique in entry:
                raise FakeSpecError(f"{where}.{unique}: cannot be set together with count > 1")
        bus_id = entry.get("pci_bus_id")
        if bus_id is not None and (not isinstance(bus_id, str) or not _PCI_BUS_ID.match(bus_id)):
            raise FakeSpecError(f"{where}.pci_bus_id: must look like 00000000:3B:00.0 (upper-case hex), got {bus_id!r}")
        hardware = _parse_hardware(entry, where)
        try:
            memory_mib = parse_mib(entry.get("memory", f"{DEFAULT_MEMORY_MIB}Mi"))
        except QuantityError as exc:
            raise FakeSpecError(f"{where}.memory: {exc}") from exc
        if memory_mib <= 0:
            raise FakeSpecError(f"{where}.memory: must be positive")
        util = entry.get("utilization", 0.0)
        if isinstance(util, bool) or not isinstance(util, int | float) or not 0.0 <= util <= 1.0:
            raise FakeSpecError(f"{where}.utilization: must be a number in 0..1, got {util!r}")
        numa = entry.get("numa_node")
        if numa is not None:
            numa = _int(numa, f"{where}.numa_node", minimum=0)
        model = str(entry.get("model", DEFAULT_MODEL))
        for _ in range(count):
            index = len(gpus)
            gpu_uuid = str(entry.get("uuid") or derive_uuid(node_name, index))
            if not gpu_uuid.startswith("GPU-") or len(gpu_uuid) > 56:
                raise FakeSpecError(f"{where}.uuid: must start with 'GPU-' and be at most 56 chars")
            pci = str(bus_id or derive_pci_bus_id(index))
            gpus.append(FakeGpuSpec(model, memory_mib, gpu_uuid, numa, float(util), pci, hardware))
    uuids = [g.uuid for g in gpus]
    if len(set(uuids)) != len(uuids):
        raise FakeSpecError("gpus: UUIDs must be unique")
    bus_ids = [g.pci_bus_id for g in gpus]
    if len(set(bus_ids)) != len(bus_ids):
        raise FakeSpecError("gpus: pci_bus_id values must be unique")
    return tuple(gpus)


def _parse_hardware(entry: Mapping[str, Any], where: str) -> HardwareReadings:
    """The readings in NVML's units; a field given as null is a sensor this board does not have."""
    d = DEFAULT_HARDWARE

    def reading(name: str, default: int | None, low: float, high: float, scale: float, integer: bool) -> int | None:
        if name not in entry:
            return default
        value = entry[name]
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or not low <= value <= high:
            raise FakeSpecError(f"{where}.{name}: must be {kind} in {low:g}..{high:g} or null (not supported), "
                                f"got {value!r}")  # fmt: skip
        return round(value * scale)

    return HardwareReadings(
        temperature_celsius=reading("temperature_celsius", d.temperature_celsius, 0, 150, 1, True),
        power_milliwatts=reading("power_watts", d.power_milliwatts, 0, 5000, 1000, False),
        sm_clock_mhz=reading("sm_clock_mhz", d.sm_clock_mhz, 0, 10_000, 1, True),
        memory_clock_mhz=reading("memory_clock_mhz", d.memory_clock_mhz, 0, 100_000, 1, True),
        memory_copy_percent=reading("memory_copy_utilization", d.memory_copy_percent, 0, 1, 100, False),
    )


def _parse_fault(entry: Any, i: int, gpu_count: int) -> FaultSpec:
    where = f"faults[{i}]"
    if not isinstance(entry, Mapping):
        raise FakeSpecError(f"{where}: must be a mapping")
    gpu = _int(entry.get("gpu"), f"{where}.gpu", minimum=0)
    if gpu >= gpu_count:
        raise FakeSpecError(f"{where}.gpu: no GPU {gpu} (the node has {gpu_count})")
    try:
        kind = FaultKind(entry.get("kind"))
    except ValueError as exc:
        kinds = [k.value for k in FaultKind]
        raise FakeSpecError(f"{where}.kind: must be one of {kinds}, got {entry.get('kind')!r}") from exc
    operation = str(entry.get("operation", ""))
    if kind is FaultKind.NVML_ERROR and operation not in OPERATIONS:
        raise FakeSpecError(f"{where}.operation: must be one of {sorted(OPERATIONS)}, got {operation!r}")
    code = _int(entry.get("code", 79 if kind is FaultKind.XID else 0), f"{where}.code", minimum=0)
    return FaultSpec(gpu=gpu, kind=kind, operation=operation, code=code)


def _parse_process(entry: Any, i: int, gpu_count: int) -> ProcessSpec:
    where = f"processes[{i}]"
    if not isinstance(entry, Mapping):
        raise FakeSpecError(f"{where}: must be a mapping")
    unknown = set(entry) - {"gpu", "pid", "memory"}
    if unknown:
        raise FakeSpecError(f"{where}: unknown field(s) {sorted(unknown)}")
    gpu = _int(entry.get("gpu"), f"{where}.gpu", minimum=0)
    if gpu >= gpu_count:
        raise FakeSpecError(f"{where}.gpu: no GPU {gpu} (the node has {gpu_count})")
    try:
        memory_mib = parse_mib(entry.get("memory", 0))
    except QuantityError as exc:
        raise FakeSpecError(f"{where}.memory: {exc}") from exc
    return ProcessSpec(gpu=gpu, pid=_int(entry.get("pid"), f"{where}.pid", minimum=1), memory_mib=memory_mib)


def _list(value: Any, field_name: str) -> list[Any]:
    if not isinstance(value, list):
        raise FakeSpecError(f"{field_name}: must be a list, got {type(value).__name__}")
    return value


def _int(value: Any, field_name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FakeSpecError(f"{field_name}: must be an integer, got {value!r}")
    if value < minimum:
        raise FakeSpecError(f"{field_name}: must be >= {minimum}, got {value}")
    return value
