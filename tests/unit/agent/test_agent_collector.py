"""The custom Collector: values match the fake backend, a broken GPU never breaks a scrape."""

from __future__ import annotations

import re
from pathlib import Path

from agent_testkit import NODE, assigned_pod
from gpulane_agent.exporter import names
from gpulane_agent.exporter.collector import GpuCollector
from gpulane_agent.exporter.server import make_registry
from gpulane_agent.gpu.backend import HardwareReadings
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthBoard
from gpulane_agent.lanes import ContainerUsage, NodeView, ViewHolder, lane_views, pod_lanes
from gpulane_agent.stats import AgentStats
from gpulane_core.quantity import MIB
from prometheus_client import generate_latest

CONTRACTS = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"


def _setup(dcgm_compat: bool = False) -> tuple[FakeBackend, AgentStats, ViewHolder, object]:
    backend = FakeBackend.default(NODE)
    stats = AgentStats()
    view = ViewHolder()
    registry = make_registry(GpuCollector(backend, HealthBoard(), view, stats, NODE, dcgm_compat=dcgm_compat))
    return backend, stats, view, registry


def test_gpu_values_follow_the_backend() -> None:
    backend, _, _, registry = _setup()
    backend.register_process(1, 7, 1000)
    backend.set_utilization(1, 0.42)
    uuid = backend.gpus()[1].uuid
    labels = {"gpu": "1", "UUID": uuid, "modelName": "Fake-GPU-16G", "Hostname": NODE}
    get = registry.get_sample_value  # type: ignore[attr-defined]
    assert get(names.GPU_MEMORY_USED_BYTES, labels) == (1000 + 256) * MIB
    assert get(names.GPU_MEMORY_TOTAL_BYTES, labels) == 16 * 1024 * MIB
    assert get(names.GPU_UTILIZATION_RATIO, labels) == 0.42
    assert get(names.GPU_HEALTHY, labels) == 1.0
    assert get(names.GPU_INFO, labels) == 1.0
    # the fake's default hardware readings, in base units
    assert get(names.GPU_TEMPERATURE_CELSIUS, labels) == 41.0
    assert get(names.GPU_POWER_WATTS, labels) == 38.5
    assert get(names.GPU_SM_CLOCK_HERTZ, labels) == 1590e6
    assert get(names.GPU_MEMORY_CLOCK_HERTZ, labels) == 5000e6
    assert get(names.GPU_MEMORY_COPY_UTILIZATION_RATIO, labels) == 0.0


def test_default_mode_exports_only_gpulane_families() -> None:
    _, _, _, registry = _setup()
    families = {f.name for f in registry.collect()}  # type: ignore[attr-defined]
    assert families and all(name.startswith("gpulane_") for name in families), families


def test_dcgm_compat_exports_dcgm_exporters_families_units_and_labels() -> None:
    backend, _, _, registry = _setup(dcgm_compat=True)
    backend.register_process(1, 7, 1000)
    backend.set_utilization(1, 0.42)
    backend.set_hardware(1, HardwareReadings(
        temperature_celsius=67, power_milliwatts=251_337, sm_clock_mhz=1980, memory_clock_mhz=2619,
        memory_copy_percent=23))  # fmt: skip
    uuid = backend.gpus()[1].uuid
    dcgm = {"gpu": "1", "UUID": uuid, "pci_bus_id": "00000000:02:00.0", "device": "nvidia1",
            "modelName": "Fake-GPU-16G", "Hostname": NODE}  # fmt: skip
    get = registry.get_sample_value  # type: ignore[attr-defined]
    assert get(names.DCGM_GPU_UTIL, dcgm) == 42.0  # percent
    assert get(names.DCGM_FB_USED, dcgm) == 1256.0  # MiB
    assert get(names.DCGM_FB_FREE, dcgm) == 16384.0 - 1256.0
    assert get(names.DCGM_GPU_TEMP, dcgm) == 67.0  # C
    assert get(names.DCGM_POWER_USAGE, dcgm) == 251.337  # W
    assert get(names.DCGM_SM_CLOCK, dcgm) == 1980.0  # MHz
    assert get(names.DCGM_MEM_CLOCK, dcgm) == 2619.0
    assert get(names.DCGM_MEM_COPY_UTIL, dcgm) == 23.0  # percent
    families = {f.name: f for f in registry.collect()}  # type: ignore[attr-defined]
    assert {name for name in families if name.startswith("DCGM_")} == set(names.DCGM_METRICS)
    assert not any(name.startswith("DCGM_FI_PROF_") for name in families)
    assert families[names.DCGM_GPU_TEMP].documentation == "GPU temperature (in C)."
    assert all(len(families[name].samples) == 4 for name in names.DCGM_METRICS)  # one series per GPU
    # the gpulane_* families stay: the compat families come on top, never instead
    assert get(names.GPU_POWER_WATTS, {"gpu": "1", "UUID": uuid, "modelName": "Fake-GPU-16G", "Hostname": NODE}) \
        == 251.337


def test_an_unsupported_reading_has_no_series_and_is_no_error() -> None:
    backend, stats, _, registry = _setup(dcgm_compat=True)
    backend.set_hardware(0, HardwareReadings(temperature_celsius=50, power_milliwatts=None, sm_clock_mhz=None,
                                             memory_clock_mhz=None, memory_copy_percent=None))  # fmt: skip
    families = {f.name: f for f in registry.collect()}  # type: ignore[attr-defined]
    gpus_with = {name: {s.labels.get("gpu") for s in families[name].samples} for name in families}
    assert gpus_with[names.GPU_POWER_WATTS] == {"1", "2", "3"}
    assert gpus_with[names.DCGM_POWER_USAGE] == {"1", "2", "3"}
    assert gpus_with[names.GPU_TEMPERATURE_CELSIUS] == {"0", "1", "2", "3"}
    assert stats.backend_errors() == {}


def test_a_failing_hardware_reading_drops_only_that_gpus_hardware_series() -> None:
    backend, stats, _, registry = _setup(dcgm_compat=True)
    backend.fail_call(2, "hardware")
    families = {f.name: f for f in registry.collect()}  # type: ignore[attr-defined]
    assert {s.labels["gpu"] for s in families[names.DCGM_SM_CLOCK].samples} == {"0", "1", "3"}
    assert {s.labels["gpu"] for s in families[names.DCGM_FB_USED].samples} == {"0", "1", "2", "3"}
    assert stats.backend_errors() == {"hardware": 1}
    healthy = {s.labels["gpu"]: s.value for s in families[names.GPU_HEALTHY].samples}
    assert healthy["2"] == 1.0  # an NVML error is not a lost GPU


def test_a_lost_gpu_is_unhealthy_counted_and_the_scrape_still_succeeds() -> None:
    backend, stats, _, registry = _setup()
    backend.lose_gpu(2)
    backend.fail_call(0, "utilization")
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    assert f'gpulane_gpu_healthy{{Hostname="node-a",UUID="{backend.gpus()[2].uuid}",gpu="2"' in text
    get = registry.get_sample_value  # type: ignore[attr-defined]
    labels2 = {"gpu": "2", "UUID": backend.gpus()[2].uuid, "modelName": "Fake-GPU-16G", "Hostname": NODE}
    assert get(names.GPU_HEALTHY, labels2) == 0.0
    assert get(names.GPU_MEMORY_USED_BYTES, labels2) is None
    assert get(names.GPU_MEMORY_TOTAL_BYTES, labels2) == 16 * 1024 * MIB
    assert stats.backend_errors()["memory"] >= 1 and stats.backend_errors()["utilization"] >= 2
    assert get(names.BACKEND_ERRORS_TOTAL, {"operation": "memory", "Hostname": NODE}) >= 1


def test_lane_and_pod_series_follow_the_node_view() -> None:
    _, stats, view, registry = _setup()
    a = assigned_pod("a", uid="u-a", lane="lane-1", lane_size_mib=2048, limit_mib=3072)
    b = assigned_pod("b", uid="u-b", lane="lane-1", lane_size_mib=2048, limit_mib=2000)
    lanes = pod_lanes([a, b], NODE)
    usage = (ContainerUsage("u-a", "main", "GPU-aaaa", 700 * MIB), ContainerUsage("u-b", "main", "GPU-aaaa", 300 * MIB))
    view.publish(NodeView(lanes, usage, lane_views(lanes, usage)))
    stats.violation("team", "b", "lane-1", "report")
    stats.allocation("ok")
    get = registry.get_sample_value  # type: ignore[attr-defined]
    lane = {"gpu": "0", "UUID": "GPU-aaaa", "lane": "lane-1", "Hostname": NODE}
    assert get(names.LANE_SIZE_BYTES, lane) == 2048 * MIB
    assert get(names.LANE_USED_BYTES, lane) == 1000 * MIB
    assert get(names.LANE_JOBS, lane) == 2
    pod = {"namespace": "team", "pod": "a", "lane": "lane-1", "UUID": "GPU-aaaa", "Hostname": NODE}
    assert get(names.POD_MEMORY_USED_BYTES, {**pod, "container": "main"}) == 700 * MIB
    assert get(names.POD_MEMORY_LIMIT_BYTES, pod) == 3072 * MIB
    assert get(names.LANE_VIOLATIONS_TOTAL,
               {"namespace": "team", "pod": "b", "lane": "lane-1", "action": "report", "Hostname": NODE}) == 1
    assert get(names.ALLOCATIONS_TOTAL, {"result": "ok", "Hostname": NODE}) == 1
    assert get(names.ALLOCATIONS_TOTAL, {"result": "error", "Hostname": NODE}) == 0


def test_a_two_gpu_pod_has_its_use_and_limit_series_on_each_gpu() -> None:
    _, _, view, registry = _setup()
    pod = assigned_pod("big", uid="u-big", gpus=((0, "GPU-a"), (1, "GPU-b")), lane="lane-0", limit_mib=4096)
    lanes = pod_lanes([pod], NODE)
    usage = (ContainerUsage("u-big", "main", "GPU-a", 100 * MIB), ContainerUsage("u-big", "main", "GPU-b", 300 * MIB))
    view.publish(NodeView(lanes, usage, lane_views(lanes, usage)))
    get = registry.get_sample_value  # type: ignore[attr-defined]
    for gpu, uuid, used in (("0", "GPU-a", 100), ("1", "GPU-b", 300)):
        series = {"namespace": "team", "pod": "big", "lane": "lane-0", "UUID": uuid, "Hostname": NODE}
        assert get(names.POD_MEMORY_USED_BYTES, {**series, "container": "main"}) == used * MIB
        assert get(names.POD_MEMORY_LIMIT_BYTES, series) == 4096 * MIB
        assert get(names.LANE_USED_BYTES, {"gpu": gpu, "UUID": uuid, "lane": "lane-0", "Hostname": NODE}) == used * MIB


def test_every_metric_name_is_in_the_contract_and_exposed() -> None:
    contract = set(re.findall(r"`((?:gpulane|DCGM)_[A-Za-z_]+)`", CONTRACTS.read_text()))
    for name in names.ALL_METRICS:
        assert name in contract, f"{name} missing from docs/contracts.md"
    _, stats, _, registry = _setup(dcgm_compat=True)
    stats.backend_error("memory")
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    for name in names.ALL_METRICS:
        if name not in (names.LANE_SIZE_BYTES, names.LANE_USED_BYTES, names.LANE_JOBS,
                        names.POD_MEMORY_USED_BYTES, names.POD_MEMORY_LIMIT_BYTES, names.LANE_VIOLATIONS_TOTAL):
            assert re.search(rf"^{name}\{{", text, re.M), name
