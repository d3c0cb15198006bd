"""Allocate's pure decisions: the one matching pod, refusals that say why, and the container env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from agent_testkit import NODE, assigned_pod
from gpulane_agent.agent import Agent
from gpulane_agent.deviceplugin._proto import api_pb2
from gpulane_agent.deviceplugin.allocate import (
    AllocateRefused,
    check_units,
    container_grant,
    find_pod,
    parse_allocation,
)
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.kube.memory import InMemoryKube
from gpulane_agent.settings import load_config
from gpulane_core import podcontract as ann

RES = "gpulane.dev/gpu-memory"
CONTRACTS = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"


def test_the_single_unallocated_pod_with_matching_charge_is_found() -> None:
    pods = [
        assigned_pod("a", charge_units=4),
        assigned_pod("b", charge_units=12),
        assigned_pod("c", charge_units=12, allocated=True),
        assigned_pod("d", charge_units=12, node="other"),
        assigned_pod("e", charge_units=12, phase="Succeeded"),
    ]
    assert find_pod(pods, NODE, 12, RES).name == "b"


def test_no_assigned_pod_is_refused_with_what_is_missing() -> None:
    with pytest.raises(AllocateRefused, match=r"no pod on node node-a awaits allocation of 5 units.*gpulane.dev/node"):
        find_pod([assigned_pod("x", allocated=True)], NODE, 5, RES)


def test_mismatched_charge_is_refused_listing_the_waiting_pods() -> None:
    with pytest.raises(AllocateRefused, match=r"no pod on node node-a has gpulane.dev/charge-units=5.*team/a \(gpulane.dev/charge-units=4\)"):
        find_pod([assigned_pod("a", charge_units=4)], NODE, 5, RES)


def test_ambiguous_match_is_refused_never_guessed() -> None:
    with pytest.raises(AllocateRefused, match=r"2 pods .* refusing to guess"):
        find_pod([assigned_pod("a"), assigned_pod("b")], NODE, 12, RES)


def test_missing_or_bad_annotation_is_named() -> None:
    pod = assigned_pod("a")
    broken = type(pod)(pod.namespace, pod.name, pod.uid, pod.node_name, pod.phase,
                       {k: v for k, v in pod.annotations.items() if k != ann.MEMORY_LIMIT_MIB}, pod.labels)
    with pytest.raises(AllocateRefused, match=r"annotation gpulane.dev/memory-limit-mib is missing"):
        parse_allocation(broken)
    bad = type(pod)(pod.namespace, pod.name, pod.uid, pod.node_name, pod.phase,
                    {**pod.annotations, ann.LANE_SIZE_MIB: "big"}, pod.labels)
    with pytest.raises(AllocateRefused, match=r"gpulane.dev/lane-size-mib='big' is not an integer"):
        parse_allocation(bad)
    with pytest.raises(AllocateRefused, match=r"charge-units=12 but the kubelet allocates 3"):
        check_units(parse_allocation(pod), 3)


def test_container_grant_is_the_contract_env_and_mount() -> None:
    pod = assigned_pod("trainer", gpu_uuid="GPU-1234", lane="lane-3", limit_mib=3072, persistent_mib=1024,
                       ephemeral_mib=2048, job="resnet")
    grant = container_grant(parse_allocation(pod), "/var/run/gpulane/coordinator.sock")
    assert dict(grant.envs) == {
        "CUDA_VISIBLE_DEVICES": "GPU-1234",
        "NVIDIA_VISIBLE_DEVICES": "GPU-1234",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=3072M",
        "GPULANE_MEMORY_LIMIT_MIB": "3072",
        "GPULANE_PERSISTENT_MIB": "1024",
        "GPULANE_EPHEMERAL_MIB": "2048",
        "GPULANE_LANE_ID": "GPU-1234/lane-3",
        "GPULANE_JOB": "team/resnet",
        "GPULANE_GPU_UUID": "GPU-1234",
        "GPULANE_COORDINATOR_SOCKET": "/var/run/gpulane/coordinator.sock",
    }
    assert [(m.container_path, m.host_path, m.read_only) for m in grant.mounts] == [
        ("/var/run/gpulane", "/var/run/gpulane", False)
    ]


def test_annotation_names_match_the_contract_page() -> None:
    text = CONTRACTS.read_text()
    documented = set(re.findall(r"`(gpulane\.dev/[a-z-]+)", text))
    for key in ann.ANNOTATION_KEYS:
        assert key in documented, f"{key} is not in docs/contracts.md"


def test_on_the_fake_backend_the_grant_also_mounts_the_process_report_directory() -> None:
    pod = assigned_pod("trainer", gpu_uuid="GPU-1234")
    plain = container_grant(parse_allocation(pod), "/var/run/gpulane/coordinator.sock")
    fake = container_grant(parse_allocation(pod), "/var/run/gpulane/coordinator.sock", "/run/gpulane/fake-gpu/processes")
    assert dict(fake.envs) == {**plain.envs, "GPULANE_FAKE_GPU_DIR": "/run/gpulane/fake-gpu/processes"}
    assert [(m.container_path, m.host_path, m.read_only) for m in fake.mounts] == [
        ("/var/run/gpulane", "/var/run/gpulane", False),
        ("/run/gpulane/fake-gpu/processes", "/run/gpulane/fake-gpu/processes", False),
    ]


@pytest.mark.parametrize(("kind", "extra"), [("fake", True), ("nvml", False)])
async def test_the_agents_allocate_exposes_the_report_directory_only_with_the_fake_backend(
    tmp_path: Path, kind: str, extra: bool
) -> None:
    reports = str(tmp_path / "processes")
    config = load_config(None, {}, {"node_name": NODE, "backend.kind": kind, "backend.fake_process_dir": reports,
                                    "enforcement.proc_root": str(tmp_path)})
    backend = FakeBackend.default(NODE)  # what runs does not matter here: the configured kind decides
    agent = Agent(config, backend, None)
    agent.kube = InMemoryKube([assigned_pod("trainer", gpu_uuid=backend.gpus()[0].uuid, charge_units=2)])
    ids = [f"{backend.gpus()[0].uuid}-m{k}" for k in range(2)]
    response = await agent.plugin_service.Allocate(
        api_pb2.AllocateRequest(container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids)]), None
    )
    container = response.container_responses[0]
    assert ("GPULANE_FAKE_GPU_DIR" in container.envs) is extra
    mounts = [(m.container_path, m.host_path, m.read_only) for m in container.mounts]
    assert ((reports, reports, False) in mounts) is extra
    if extra:
        assert container.envs["GPULANE_FAKE_GPU_DIR"] == reports
