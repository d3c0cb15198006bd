"""The DRA plugin's pure parts: claim → grant (env same as Allocate's), per-claim refusals, CDI specs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gpulane_agent.deviceplugin.allocate import Allocation, container_grant
from gpulane_agent.dra import cdi
from gpulane_agent.dra.claims import DRIVER, PrepareRefused, claim_grant, claim_view
from gpulane_agent.dra.plugin import prepared_devices
from gpulane_agent.gpu.backend import GpuInfo
from gpulane_agent.kube.api import PodView
from gpulane_core import podcontract as ann
from gpulane_core.quantity import MIB

NODE = "node-a"
UID = "4f1c2a9e-7b6d-4e1a-9c3b-2d5e8f0a1b2c"
SOCKET = "/run/gpulane/coordinator.sock"
GPUS = (GpuInfo(0, "GPU-aaaa", "A100", 16384 * MIB), GpuInfo(1, "GPU-bbbb", "A100", 16384 * MIB))


def result(device: str = "gpu-0", memory: str | None = "2Gi", **over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"request": "gpu", "driver": DRIVER, "pool": NODE, "device": device}
    if memory is not None:
        r["consumedCapacity"] = {"memory": memory}
    r.update(over)
    return r


def claim_obj(results: list[dict[str, Any]] | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": "c", "uid": UID, "annotations": annotations or {}},
        "status": {},
    }
    if results is not None:
        obj["status"]["allocation"] = {"devices": {"results": results}}
    return obj


def grant_of(obj: dict[str, Any]) -> Any:
    return claim_grant(claim_view(obj), NODE, GPUS, SOCKET)


def test_a_claim_without_lane_annotations_is_a_lane_of_its_own_limited_to_its_consumed_memory() -> None:
    envs = grant_of(claim_obj([result(memory="2Gi")])).grant.envs
    assert envs["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    assert envs["GPULANE_MEMORY_LIMIT_MIB"] == "2048"
    assert envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=2048M"
    assert envs["GPULANE_LANE_ID"] == f"GPU-aaaa/claim-{UID}"
    assert envs["GPULANE_PERSISTENT_MIB"] == "2048"
    assert envs["GPULANE_EPHEMERAL_MIB"] == "0"
    assert envs["GPULANE_JOB"] == "ns/c"
    assert envs["GPULANE_COORDINATOR_SOCKET"] == SOCKET


def test_the_operators_claim_annotations_give_lane_and_memory_split_and_the_env_equals_allocates() -> None:
    annotations = {ann.LANE: "lane-1", ann.PERSISTENT_MIB: "1024", ann.EPHEMERAL_MIB: "512", ann.LABEL_JOB: "train"}
    grant = grant_of(claim_obj([result(device="gpu-1", memory="3Gi")], annotations)).grant
    # The device plugin's Allocate for the same placement, from pod annotations.
    assignment = ann.Assignment(
        job=ann.pod_job("ns", "p", {ann.LABEL_JOB: "train"}), node=NODE, gpu_indices=(1,), gpu_uuids=("GPU-bbbb",),  # type: ignore[arg-type]
        lane="lane-1", lane_size_mib=2048, persistent_mib=1024, ephemeral_mib=512, charge_units=12,  # type: ignore[arg-type]
        job_class=ann.JobClass.GUARANTEED,
    )  # fmt: skip
    allocate = container_grant(Allocation(PodView("ns", "p", "u"), assignment, 3072), SOCKET)
    assert dict(grant.envs) == dict(allocate.envs)
    assert grant.mounts == allocate.mounts


def test_the_smallest_consumed_memory_is_the_per_gpu_limit_of_a_two_gpu_claim() -> None:
    g = grant_of(claim_obj([result("gpu-0", "4Gi"), result("gpu-1", "2Gi", request="second")]))
    assert g.grant.envs["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa,GPU-bbbb"
    assert g.grant.envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=2048M,1=2048M"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (claim_obj(None), r"claim ns/c \(uid .*\): not allocated"),
        (claim_obj([result(driver="other.example.com")]), r"no device of driver gpu.gpulane.dev \(drivers: other.example.com\)"),
        (claim_obj([]), r"no device of driver gpu.gpulane.dev \(drivers: none\)"),
        (claim_obj([result(pool="node-b")]), r"in pool 'node-b', but this node's pool is 'node-a'"),
        (claim_obj([result(device="gpu-7")]), r"device 'gpu-7' is not a GPU of this node \(devices: gpu-0, gpu-1\)"),
        (claim_obj([result(device="mig-0")]), r"device 'mig-0' is not a GPU"),
        (claim_obj([result(memory=None)]), r"records no consumedCapacity.memory"),
        (claim_obj([result(memory="lots")]), r"consumedCapacity.memory of gpu-0: 'lots' is not a size"),
        (claim_obj([result(memory="100Ki")]), r"under 1 MiB"),
        (claim_obj([result(), result()]), r"one GPU is allocated to it twice"),
        (claim_obj([result()], {ann.LANE: "lane-1"}), rf"annotation {ann.PERSISTENT_MIB}='' is not"),
        (claim_obj([result()], {ann.PERSISTENT_MIB: "1", ann.EPHEMERAL_MIB: "0"}), rf"annotation {ann.LANE} is missing"),
        (claim_obj([result()], {ann.LANE: "l", ann.PERSISTENT_MIB: "4096", ann.EPHEMERAL_MIB: "0"}), "exceeds the consumed memory 2048"),
    ],
)
def test_bad_claims_are_refused_naming_the_claim_and_the_reason(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(PrepareRefused, match=message) as info:
        grant_of(obj)
    assert str(info.value).startswith(f"claim ns/c (uid {UID}): ")


def test_other_drivers_results_are_ignored_when_ours_are_present() -> None:
    g = grant_of(claim_obj([result(driver="net.example.com", device="nic-0", pool="x"), result()]))
    assert [r.device for r in g.results] == ["gpu-0"]


def test_the_claims_cdi_device_goes_once_per_request_with_the_share_id() -> None:
    share = "0b9c6f3e-1d2a-4c5b-8e7f-6a5b4c3d2e1f"
    cdi_id = (f"gpu.gpulane.dev/gpu={UID}",)
    one_request = prepared_devices(grant_of(claim_obj([result("gpu-0", shareID=share), result("gpu-1")])))
    assert [d.cdi_ids for d in one_request] == [cdi_id, ()]
    assert one_request[0].share_id == share and one_request[1].share_id == ""
    assert (one_request[0].pool, one_request[0].device, one_request[0].request_names) == (NODE, "gpu-0", ("gpu",))
    two_requests = prepared_devices(grant_of(claim_obj([result("gpu-0"), result("gpu-1", request="b")])))
    assert [d.cdi_ids for d in two_requests] == [cdi_id, cdi_id]


def test_the_cdi_spec_carries_the_env_and_mounts_and_is_written_idempotently(tmp_path: Path) -> None:
    grant = grant_of(claim_obj([result()])).grant
    document = cdi.spec(UID, grant)
    assert document["cdiVersion"] == "0.6.0" and document["kind"] == "gpu.gpulane.dev/gpu"
    assert document["devices"][0]["name"] == UID
    assert cdi.env_of(document) == dict(grant.envs)
    assert document["devices"][0]["containerEdits"]["mounts"] == [
        {"hostPath": "/run/gpulane", "containerPath": "/run/gpulane", "options": ["rbind", "rw"]}
    ]
    path = cdi.write_spec(tmp_path, UID, document)
    first = path.read_bytes()
    assert cdi.write_spec(tmp_path, UID, document).read_bytes() == first
    assert json.loads(first) == document
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"gpu.gpulane.dev-{UID}.json"]
    assert cdi.remove_spec(tmp_path, UID) is True
    assert cdi.remove_spec(tmp_path, UID) is False
    assert list(tmp_path.iterdir()) == []
