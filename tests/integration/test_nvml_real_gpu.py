"""NvmlBackend on a real NVIDIA GPU: temperature, power, clocks and memory-copy utilization (issue 15).

Skipped where NVML cannot start (no driver, no GPU): the pynvml-shaped fake in
tests/unit/agent/test_agent_nvml.py covers the code paths everywhere; this checks the real library and
driver answer as that fake does. Where ``nvidia-smi`` exists the readings are compared with its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from gpulane_agent.exporter import names
from gpulane_agent.exporter.collector import GpuCollector
from gpulane_agent.exporter.server import make_registry
from gpulane_agent.gpu.backend import BackendInitError
from gpulane_agent.gpu.nvml import NvmlBackend
from gpulane_agent.health import HealthBoard
from gpulane_agent.lanes import ViewHolder
from gpulane_agent.stats import AgentStats

pytestmark = pytest.mark.integration


@pytest.fixture
def nvml() -> Iterator[NvmlBackend]:
    try:
        backend = NvmlBackend.load()
    except BackendInitError as exc:
        pytest.skip(f"no usable NVML here: {exc}")
    if not backend.gpus():
        backend.shutdown()
        pytest.skip("NVML started but sees no GPU")
    try:
        yield backend
    finally:
        backend.shutdown()


def test_real_gpu_hardware_readings_are_plausible(nvml: NvmlBackend) -> None:
    for gpu in nvml.gpus():
        assert re.fullmatch(r"[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]", gpu.pci_bus_id), gpu.pci_bus_id
        hw = nvml.hardware(gpu.index)
        assert hw.temperature_celsius is not None and 5 <= hw.temperature_celsius <= 110, hw
        assert hw.sm_clock_mhz is not None and 100 <= hw.sm_clock_mhz <= 5000, hw
        assert hw.memory_clock_mhz is not None and 100 <= hw.memory_clock_mhz <= 40_000, hw
        assert hw.memory_copy_percent is not None and 0 <= hw.memory_copy_percent <= 100, hw
        if hw.power_milliwatts is not None:  # data-centre boards report it; some vGPU guests do not
            assert 1_000 <= hw.power_milliwatts <= 2_000_000, hw


def test_real_gpu_readings_agree_with_nvidia_smi(nvml: NvmlBackend) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi not installed")
    fields = "index,uuid,pci.bus_id,temperature.gpu,clocks.mem"
    out = subprocess.run([smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]
    by_index = {g.index: g for g in nvml.gpus()}
    for index, uuid, bus_id, temperature, mem_clock in rows:
        gpu = by_index[int(index)]
        assert gpu.uuid == uuid and gpu.pci_bus_id == bus_id
        hw = nvml.hardware(gpu.index)
        assert hw.temperature_celsius is not None and abs(hw.temperature_celsius - int(temperature)) <= 3
        # fixed on data-centre boards; a consumer board may change P-state between the two reads
        assert hw.memory_clock_mhz is not None and abs(hw.memory_clock_mhz - int(mem_clock)) <= 0.1 * int(mem_clock)


def test_real_gpu_dcgm_compat_has_one_series_per_gpu_for_every_family(nvml: NvmlBackend) -> None:
    registry = make_registry(GpuCollector(nvml, HealthBoard(), ViewHolder(), AgentStats(), "real", dcgm_compat=True))
    families = {f.name: f for f in registry.collect()}
    count = len(nvml.gpus())
    for family in names.DCGM_METRICS:
        if family == names.DCGM_POWER_USAGE and nvml.hardware(0).power_milliwatts is None:
            continue
        assert len(families[family].samples) == count, family
    assert not any(name.startswith("DCGM_FI_PROF_") for name in families)
