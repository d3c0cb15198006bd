"""Memory-unit arithmetic: device IDs, the advertised list, preferred allocation."""

from __future__ import annotations

import pytest
from gpulane_agent.deviceplugin.units import (
    DeviceIdError,
    advertised_devices,
    device_id,
    preferred_allocation,
    split_device_id,
    units_per_gpu,
)
from gpulane_agent.gpu.backend import GpuInfo
from gpulane_agent.gpu.fake_spec import derive_uuid
from gpulane_core.quantity import MIB


def test_device_ids_round_trip_and_fit_63_chars() -> None:
    uuid = derive_uuid("a-rather-long-node-name.example.com", 7)
    dev = device_id(uuid, 319)
    assert len(dev) <= 63
    assert split_device_id(dev) == (uuid, 319)
    with pytest.raises(DeviceIdError):
        split_device_id("GPU-x")
    with pytest.raises(DeviceIdError):
        device_id("GPU-" + "x" * 60, 1)


def test_advertised_devices_one_per_unit_and_unhealthy_gpu_marks_all_units() -> None:
    gpus = [GpuInfo(0, "GPU-a", "m", 16 * 1024 * MIB, 0), GpuInfo(1, "GPU-b", "m", 1000 * MIB)]
    devices = advertised_devices(gpus, {1: False}, unit_mib=256)
    assert units_per_gpu(16 * 1024 * MIB, 256) == 64
    assert len([d for d in devices if d.gpu_uuid == "GPU-a"]) == 64
    assert len([d for d in devices if d.gpu_uuid == "GPU-b"]) == 3  # partial unit not advertised
    assert all(d.healthy for d in devices if d.gpu_uuid == "GPU-a")
    assert not any(d.healthy for d in devices if d.gpu_uuid == "GPU-b")
    assert devices[0].id == "GPU-a-m0" and devices[0].numa_node == 0


def _ids(gpu: str, ks: range) -> list[str]:
    return [device_id(gpu, k) for k in ks]


def test_preferred_allocation_prefers_the_assigned_gpu() -> None:
    available = _ids("GPU-a", range(10)) + _ids("GPU-b", range(10))
    assert preferred_allocation(available, [], 3, "GPU-b") == _ids("GPU-b", range(3))


def test_preferred_allocation_packs_on_the_tightest_gpu_that_fits() -> None:
    available = _ids("GPU-a", range(10)) + _ids("GPU-b", range(4)) + _ids("GPU-c", range(2))
    assert preferred_allocation(available, [], 3, None) == _ids("GPU-b", range(3))
    # nothing fits 12 on one GPU: start with the largest
    chosen = preferred_allocation(available, [], 12, None)
    assert chosen[:10] == _ids("GPU-a", range(10)) and len(chosen) == 12


def test_preferred_allocation_keeps_must_include_and_ignores_foreign_ids() -> None:
    available = ["junk", *_ids("GPU-a", range(4))]
    chosen = preferred_allocation(available, ["GPU-a-m3"], 2, None)
    assert chosen == ["GPU-a-m3", "GPU-a-m0"]
