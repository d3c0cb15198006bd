"""The fake GPU backend behaves like NVML as the agent reads it, and its spec fails loudly on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_agent.gpu.backend import EventKind, GpuError, GpuLostError, HardwareReadings
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.fake_spec import FakeSpecError, derive_uuid, parse_spec
from gpulane_core.quantity import MIB


def test_default_spec_is_four_16g_gpus_with_uuids_from_the_node_name() -> None:
    a = FakeBackend.default("node-a")
    gpus = a.gpus()
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert {g.model for g in gpus} == {"Fake-GPU-16G"}
    assert {g.memory_total_bytes for g in gpus} == {16 * 1024 * MIB}
    assert [g.uuid for g in gpus] == [derive_uuid("node-a", i) for i in range(4)]
    assert len({g.uuid for g in gpus}) == 4
    assert FakeBackend.default("node-a").gpus() == gpus  # deterministic
    assert {g.uuid for g in FakeBackend.default("node-b").gpus()}.isdisjoint({g.uuid for g in gpus})
    assert all(g.uuid.startswith("GPU-") and len(g.uuid) == 40 for g in gpus)


def test_memory_used_is_processes_plus_reserved_and_freed_on_unregister() -> None:
    fake = FakeBackend(parse_spec({"version": "v1", "reserved_mib": 100, "gpus": [{"memory": "8Gi"}]}, "n"))
    assert fake.memory(0).used_bytes == 100 * MIB
    fake.register_process(0, pid=41, used_mib=1000)
    fake.register_process(0, pid=42, used_mib=500)
    mem = fake.memory(0)
    assert mem.used_bytes == 1600 * MIB
    assert mem.free_bytes == 8192 * MIB - 1600 * MIB
    assert [(p.pid, p.used_bytes) for p in fake.processes(0)] == [(41, 1000 * MIB), (42, 500 * MIB)]
    fake.register_process(0, pid=41, used_mib=10)  # re-register updates
    fake.unregister_process(42)
    assert fake.memory(0).used_bytes == 110 * MIB


def test_a_lost_gpu_raises_gpu_lost_on_every_reading_and_reports_an_event() -> None:
    fake = FakeBackend.default("n")
    fake.lose_gpu(2)
    for read in (fake.memory, fake.utilization, fake.processes, fake.hardware):
        with pytest.raises(GpuLostError):
            read(2)
    fake.memory(1)  # the others are fine
    events = fake.poll_events()
    assert [(e.index, e.kind) for e in events] == [(2, EventKind.GPU_LOST)]
    assert fake.poll_events() == ()
    fake.heal(2)
    fake.memory(2)


def test_faults_from_the_spec_fail_only_the_chosen_call_and_emit_xids() -> None:
    spec = parse_spec(
        {"version": "v1", "faults": [{"gpu": 0, "kind": "nvml-error", "operation": "utilization"},
                                     {"gpu": 3, "kind": "xid", "code": 48}]},
        "n",
    )
    fake = FakeBackend(spec)
    with pytest.raises(GpuError) as info:
        fake.utilization(0)
    assert not isinstance(info.value, GpuLostError)
    assert info.value.operation == "utilization"
    fake.memory(0)
    assert [(e.index, e.kind, e.code) for e in fake.poll_events()] == [(3, EventKind.XID, 48)]


def test_spec_processes_are_present_from_the_start() -> None:
    fake = FakeBackend(parse_spec({"version": "v1", "reserved_mib": 0,
                                   "processes": [{"gpu": 2, "pid": 4242, "memory": "2Gi"}]}, "n"))
    assert [(p.pid, p.used_bytes) for p in fake.processes(2)] == [(4242, 2048 * MIB)]
    assert fake.memory(2).used_bytes == 2048 * MIB


def test_spec_count_expands_and_file_loading(tmp_path: Path) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text("version: v1\ngpus:\n  - {model: A100-40G, memory: 40Gi, count: 2, numa_node: 1, utilization: 0.5}\n")
    fake = FakeBackend.from_file(path, "n")
    assert [(g.model, g.memory_total_bytes // MIB, g.numa_node) for g in fake.gpus()] == [("A100-40G", 40960, 1)] * 2
    assert fake.utilization(1) == 0.5


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"version": "v2"}, "version"),
        ({"gpus": [{"memory": "lots"}]}, "gpus[0].memory"),
        ({"gpus": [{"utilization": 1.5}]}, "gpus[0].utilization"),
        ({"gpus": [{"modle": "x"}]}, "gpus[0]: unknown"),
        ({"faults": [{"gpu": 9, "kind": "lost"}]}, "faults[0].gpu"),
        ({"faults": [{"gpu": 0, "kind": "melt"}]}, "faults[0].kind"),
        ({"faults": [{"gpu": 0, "kind": "nvml-error", "operation": "fly"}]}, "faults[0].operation"),
        # The inventory never fails under NVML (read once at start-up), so the fake must not pretend it can.
        ({"faults": [{"gpu": 0, "kind": "nvml-error", "operation": "gpus"}]}, "faults[0].operation"),
        ({"gpus": [{"uuid": "GPU-x"}, {"uuid": "GPU-x"}]}, "gpus: UUIDs"),
        ({"gpus": [{"temperature_celsius": "hot"}]}, "gpus[0].temperature_celsius: must be an integer"),
        ({"gpus": [{"temperature_celsius": 41.5}]}, "gpus[0].temperature_celsius"),
        ({"gpus": [{"temperature_celsius": 400}]}, "gpus[0].temperature_celsius"),
        ({"gpus": [{"power_watts": -3}]}, "gpus[0].power_watts: must be a number in 0..5000"),
        ({"gpus": [{"power_watts": True}]}, "gpus[0].power_watts"),
        ({"gpus": [{"sm_clock_mhz": 1.5e9}]}, "gpus[0].sm_clock_mhz"),
        ({"gpus": [{"memory_clock_mhz": "fast"}]}, "gpus[0].memory_clock_mhz"),
        ({"gpus": [{"memory_copy_utilization": 40}]}, "gpus[0].memory_copy_utilization: must be a number in 0..1"),
        ({"gpus": [{"pci_bus_id": "3b:00.0"}]}, "gpus[0].pci_bus_id"),
        ({"gpus": [{"pci_bus_id": "00000000:3B:00.0", "count": 2}]}, "gpus[0].pci_bus_id: cannot be set"),
        ({"gpus": [{"pci_bus_id": "00000000:02:00.0"}, {}]}, "gpus: pci_bus_id values must be unique"),
        ({"reserved_mib": -1}, "reserved_mib"),
        ({"processes": [{"gpu": 7, "pid": 1, "memory": "1Gi"}]}, "processes[0].gpu"),
        ({"processes": [{"gpu": 0, "pid": 0, "memory": "1Gi"}]}, "processes[0].pid"),
        ({"processes": [{"gpu": 0, "pid": 5, "memory": "a lot"}]}, "processes[0].memory"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_spec_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(FakeSpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(raw, "n")


def test_the_charts_default_fake_config_is_a_valid_spec() -> None:
    import yaml

    values = Path(__file__).resolve().parents[3] / "charts" / "gpulane" / "values.yaml"
    spec = parse_spec(yaml.safe_load(values.read_text())["nodeAgent"]["fakeConfig"], "kind-worker")
    assert len(spec.gpus) >= 1


def test_hardware_readings_have_plausible_defaults_and_are_configurable_per_gpu() -> None:
    fake = FakeBackend(parse_spec({"version": "v1", "gpus": [
        {"model": "H100-80G", "memory": "80Gi", "pci_bus_id": "00000000:1B:00.0", "temperature_celsius": 67,
         "power_watts": 512.25, "sm_clock_mhz": 1980, "memory_clock_mhz": 2619, "memory_copy_utilization": 0.37},
        {"power_watts": None, "memory_copy_utilization": None},  # a board without those sensors
        {},
    ]}, "n"))  # fmt: skip
    assert fake.hardware(0) == HardwareReadings(67, 512_250, 1980, 2619, 37)
    assert fake.hardware(1).power_milliwatts is None and fake.hardware(1).memory_copy_percent is None
    default = fake.hardware(2)
    assert 20 <= (default.temperature_celsius or 0) <= 90 and 10_000 <= (default.power_milliwatts or 0) <= 700_000
    assert (default.sm_clock_mhz or 0) > 0 and (default.memory_clock_mhz or 0) > 0
    assert [g.pci_bus_id for g in fake.gpus()] == ["00000000:1B:00.0", "00000000:02:00.0", "00000000:03:00.0"]
    fake.set_hardware(2, HardwareReadings(80, 300_000, 1410, 1215, 90))
    assert fake.hardware(2).temperature_celsius == 80
    fake.fail_call(2, "hardware")
    with pytest.raises(GpuError) as info:
        fake.hardware(2)
    assert info.value.operation == "hardware" and not isinstance(info.value, GpuLostError)
