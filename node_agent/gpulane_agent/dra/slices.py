"""The node's ResourceSlice (``resource.k8s.io/v1``), built purely from the GPU inventory and health.

One slice per node, in a pool named after the node, one device ``gpu-<index>`` per healthy GPU:

- ``allowMultipleAllocations: true``: several claims share one GPU (KEP-5075 consumable capacity).
- capacity ``memory``: the GPU's memory in whole memory units (the device plugin's
  ``memory_unit_mib``; a partial unit is never offered, as with the device plugin), with a
  ``requestPolicy`` whose default and step are one unit, so every claim consumes whole units and a claim
  that names no memory takes one.
- attributes ``uuid``, ``model`` (strings) and ``index`` (int), unqualified, hence in the driver's domain
  (``device.attributes["gpu.gpulane.dev"].uuid`` in CEL).

An unhealthy GPU is left out of the slice rather than published with a taint: the allocator then
cannot pick it, which is what the device plugin's ``Unhealthy`` achieves; claims already prepared on it
keep their CDI files (a running container is not the slice's business). When no GPU is healthy the slice
stays, with no devices, so the pool is still visibly this node's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpulane_core.quantity import parse_bytes

from gpulane_agent.deviceplugin.units import units_per_gpu
from gpulane_agent.dra.claims import DRIVER, MEMORY, device_name
from gpulane_agent.gpu.backend import GpuInfo

API_VERSION = "resource.k8s.io/v1"
MAX_NAME = 253


def slice_name(node_name: str) -> str:
    name = f"{node_name}-{DRIVER}"
    if len(name) > MAX_NAME:
        raise ValueError(f"node name {node_name!r} is too long for a ResourceSlice name ({name!r})")
    return name


def device(gpu: GpuInfo, unit_mib: int) -> dict[str, Any]:
    unit = f"{unit_mib}Mi"
    return {
        "name": device_name(gpu.index),
        "allowMultipleAllocations": True,
        "attributes": {
            "uuid": {"string": gpu.uuid},
            "model": {"string": gpu.model},
            "index": {"int": gpu.index},
        },
        "capacity": {
            MEMORY: {
                "value": f"{units_per_gpu(gpu.memory_total_bytes, unit_mib) * unit_mib}Mi",
                "requestPolicy": {"default": unit, "validRange": {"min": unit, "step": unit}},
            }
        },
    }


def slice_spec(node_name: str, gpus: Iterable[GpuInfo], health: Mapping[int, bool], unit_mib: int) -> dict[str, Any]:
    """The slice's spec without the pool generation (the publisher owns that counter)."""
    devices = [device(g, unit_mib) for g in sorted(gpus, key=lambda g: g.index) if health.get(g.index, True)]
    return {
        "driver": DRIVER,
        "nodeName": node_name,
        "pool": {"name": node_name, "resourceSliceCount": 1},
        "devices": devices,
    }


def with_generation(spec: Mapping[str, Any], generation: int) -> dict[str, Any]:
    return {**spec, "pool": {**spec["pool"], "generation": generation}}


def comparable(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as read back, minus the generation, with quantities in bytes and no device list as empty.

    The apiserver drops an empty ``devices`` list and rewrites quantities canonically (``16384Mi`` comes
    back as ``16Gi``), so both sides go through this before they are compared.
    """
    pool = {k: v for k, v in (spec.get("pool") or {}).items() if k != "generation"}
    devices = [{**d, "capacity": _capacity_bytes(d.get("capacity") or {})} for d in spec.get("devices") or []]
    return {**spec, "pool": pool, "devices": devices}


def _capacity_bytes(capacity: Mapping[str, Any]) -> dict[str, Any]:
    def norm(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return parse_bytes(value) if isinstance(value, str) else value

    return {name: norm(c) for name, c in capacity.items()}


def body(node_name: str, node_uid: str, spec: Mapping[str, Any], generation: int) -> dict[str, Any]:
    """The full object; owned by the Node (when its uid is known) so deleting the node collects it."""
    metadata: dict[str, Any] = {"name": slice_name(node_name)}
    if node_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid, "controller": True}
        ]
    return {"apiVersion": API_VERSION, "kind": "ResourceSlice", "metadata": metadata,
            "spec": with_generation(spec, generation)}  # fmt: skip
