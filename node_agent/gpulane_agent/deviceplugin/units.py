"""Pure arithmetic of memory units: device IDs, the advertised device list, preferred allocations.

One kubelet "device" of ``gpulane.dev/gpu-memory`` is one memory unit (``memory_unit_mib``) on one GPU,
ID ``<GPU-UUID>-m<k>``. The kubelet counts them as a coarse admission guard; the operator's lane state
stays authoritative (docs/contracts.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gpulane_core.quantity import MIB

from gpulane_agent.gpu.backend import GpuInfo

MAX_DEVICE_ID_LEN = 63
_DEVICE_ID = re.compile(r"^(?P<uuid>.+)-m(?P<k>[0-9]+)$")


class DeviceIdError(ValueError):
    """A device ID that is not ``<GPU-UUID>-m<k>``."""


@dataclass(frozen=True, slots=True)
class UnitDevice:
    id: str
    gpu_uuid: str
    healthy: bool
    numa_node: int | None


def device_id(gpu_uuid: str, k: int) -> str:
    value = f"{gpu_uuid}-m{k}"
    if len(value) > MAX_DEVICE_ID_LEN:
        raise DeviceIdError(f"device ID {value!r} is longer than {MAX_DEVICE_ID_LEN} characters")
    return value


def split_device_id(value: str) -> tuple[str, int]:
    """``<uuid>-m<k>`` to (uuid, k)."""
    m = _DEVICE_ID.match(value)
    if not m:
        raise DeviceIdError(f"device ID {value!r} is not <GPU-UUID>-m<k>")
    return m.group("uuid"), int(m.group("k"))


def units_per_gpu(memory_total_bytes: int, unit_mib: int) -> int:
    """Whole units that fit in the GPU's memory (a partial unit is never advertised)."""
    return memory_total_bytes // (unit_mib * MIB)


def advertised_devices(gpus: Iterable[GpuInfo], health: Mapping[int, bool], unit_mib: int) -> list[UnitDevice]:
    """Every unit of every GPU; an unhealthy GPU marks all its units Unhealthy."""
    devices: list[UnitDevice] = []
    for gpu in gpus:
        healthy = health.get(gpu.index, True)
        for k in range(units_per_gpu(gpu.memory_total_bytes, unit_mib)):
            devices.append(UnitDevice(device_id(gpu.uuid, k), gpu.uuid, healthy, gpu.numa_node))
    return devices


def preferred_allocation(
    available: Sequence[str], must_include: Sequence[str], size: int, preferred_gpu: str | None
) -> list[str]:
    """Pick ``size`` IDs: the must-include ones, then as many units of ``preferred_gpu`` as it has, then
    the rest packed.

    Units of the GPU the operator assigned come first because that keeps the kubelet's per-GPU counts
    closest to where the pod really runs. The rest goes to the GPU whose free units fit it most tightly
    (best fit), so large free GPUs stay whole; without a single GPU that fits, GPUs are filled from the
    one with most free units. Ties break on UUID for determinism; unparseable IDs are ignored.
    """
    chosen = list(dict.fromkeys(must_include))[:size]
    by_gpu: dict[str, list[tuple[int, str]]] = {}
    for dev in available:
        if dev in chosen:
            continue
        try:
            gpu_uuid, k = split_device_id(dev)
        except DeviceIdError:
            continue
        by_gpu.setdefault(gpu_uuid, []).append((k, dev))
    for units in by_gpu.values():
        units.sort()

    def take(gpu_uuid: str) -> None:
        for _, dev in by_gpu.pop(gpu_uuid):
            if len(chosen) >= size:
                return
            chosen.append(dev)

    if preferred_gpu is not None and preferred_gpu in by_gpu:
        take(preferred_gpu)
    remaining = size - len(chosen)
    fitting = sorted((len(u), g) for g, u in by_gpu.items() if len(u) >= remaining)
    if remaining > 0 and fitting:
        take(fitting[0][1])
    for _, gpu_uuid in sorted((-len(u), g) for g, u in by_gpu.items()):
        if len(chosen) >= size:
            break
        take(gpu_uuid)
    return chosen
