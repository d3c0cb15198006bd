"""DRA jobs, the pure part: spec parsing, the pod and its ResourceClaim, the allocation, foreign claims."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from gpulane_core.podcontract import RESOURCE, Assignment
from gpulane_operator.assignment import parse_pod
from gpulane_operator.claims import (
    allocation,
    build_claim,
    claim_mib,
    foreign_assignments,
    oversized,
    parse_claim,
    same_allocation,
    status_patch,
)
from gpulane_operator.crd import parse_job
from gpulane_operator.inventory import merge, parse_node
from gpulane_operator.podspec import build_pod
from gpulane_operator.statuses import scheduled
from opfakes import job_body, node_body


def _dra(name: str = "a", selectors: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    body = job_body(name, "1Gi", "2Gi", **kw)
    body["spec"]["allocation"] = "dra"
    if selectors is not None:
        body["spec"]["deviceSelectors"] = selectors
    return body


def _assignment(indices: tuple[int, ...] = (1,)) -> Assignment:
    return Assignment(JobId("ns/a"), NodeName("n1"), indices, tuple(f"GPU-n1-{i}" for i in indices), LaneId("lane-0"),
                      2048, 1024, 2048, 0, JobClass.GUARANTEED)  # fmt: skip


def test_allocation_and_selectors_are_parsed_and_checked_against_the_mode() -> None:
    rec = parse_job(_dra(selectors=['device.attributes["gpu.gpulane.dev"].index == 1']))
    assert rec.error == "" and rec.allocation == "dra" and len(rec.selectors) == 1
    assert parse_job(job_body("b")).allocation == ""  # unset: the operator's scheduling.allocation decides
    body = job_body("c")
    body["spec"].update(allocation="device-plugin", deviceSelectors=["true"])
    bad = parse_job(body)
    assert bad.job is None and bad.error.startswith("spec.deviceSelectors: only DRA jobs")
    body["spec"] = {**body["spec"], "allocation": "cdi"}
    assert parse_job(body).error.startswith("spec.allocation: must be one of device-plugin, dra")


def test_a_dra_pod_asks_for_its_claim_instead_of_the_extended_resource() -> None:
    rec = parse_job(_dra())
    pod = build_pod(rec, _assignment(), claim_mib=3072)
    spec = pod["spec"]
    assert spec["schedulerName"] == "gpulane"
    assert spec["resourceClaims"] == [{"name": "gpu", "resourceClaimName": "a-gpulane"}]
    resources = spec["containers"][0]["resources"]
    assert resources == {"claims": [{"name": "gpu"}]}
    assert RESOURCE not in str(pod)
    ann = pod["metadata"]["annotations"]
    assert ann["gpulane.dev/lane"] == "lane-0" and ann["gpulane.dev/claim-mib"] == "3072"
    parsed = parse_pod({**pod, "metadata": {**pod["metadata"], "uid": "pod-uid"}})
    assert parsed is not None and parsed.claim_mib == 3072 and parsed.uid == "pod-uid"
    plain = build_pod(rec, _assignment(), None)
    assert "resourceClaims" not in plain["spec"] and parse_pod(plain).claim_mib is None  # type: ignore[union-attr]


def test_the_claim_is_owned_by_the_pod_and_carries_the_lane() -> None:
    rec = parse_job(_dra(selectors=['device.attributes["gpu.gpulane.dev"].model == "T4"']))
    claim = build_claim(rec, _assignment((0, 1)), "a-gpulane", "pod-uid", 16384, rec.selectors)
    meta = claim["metadata"]
    assert meta["name"] == "a-gpulane" and meta["namespace"] == "ns"
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "a-gpulane", "uid": "pod-uid",
                                        "controller": True}]  # fmt: skip
    assert meta["annotations"] == {"gpulane.dev/lane": "lane-0", "gpulane.dev/persistent-mib": "1024",
                                   "gpulane.dev/ephemeral-mib": "2048", "gpulane.dev/job": "a"}  # fmt: skip
    assert claim["spec"]["devices"]["requests"] == [{"name": "gpu", "exactly": {
        "deviceClassName": "gpu.gpulane.dev", "allocationMode": "ExactCount", "count": 2,
        "capacity": {"requests": {"memory": "16384Mi"}},
        "selectors": [{"cel": {"expression": 'device.attributes["gpu.gpulane.dev"].model == "T4"'}}]}}]  # fmt: skip


def test_the_allocation_has_one_result_per_gpu_and_a_stable_lowercase_share_id() -> None:
    patch = status_patch(_assignment((0, 1)), 16384, "claim-uid", "a-gpulane", "pod-uid")["status"]
    results = patch["allocation"]["devices"]["results"]
    assert [(r["request"], r["driver"], r["pool"], r["device"], r["consumedCapacity"]) for r in results] == [
        ("gpu", "gpu.gpulane.dev", "n1", "gpu-0", {"memory": "16384Mi"}),
        ("gpu", "gpu.gpulane.dev", "n1", "gpu-1", {"memory": "16384Mi"}),
    ]
    for r in results:
        assert r["shareID"] == str(uuid.UUID(r["shareID"])) and r["shareID"] == r["shareID"].lower()
    assert len({r["shareID"] for r in results}) == 2
    assert patch["allocation"]["nodeSelector"] == {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}  # fmt: skip
    assert patch["reservedFor"] == [{"resource": "pods", "name": "a-gpulane", "uid": "pod-uid"}]
    again = status_patch(_assignment((0, 1)), 16384, "claim-uid", "a-gpulane", "pod-uid")
    assert again["status"] == patch  # a retried write writes the same


def test_same_allocation_compares_devices_and_memory_but_not_share_ids() -> None:
    mine = allocation(_assignment(), 3072, "u1")
    assert same_allocation(mine, allocation(_assignment(), 3072, "other-uid"))
    # The apiserver canonicalises quantities: 3072Mi reads back as 3Gi.
    canonical = {**mine, "devices": {"results": [{**mine["devices"]["results"][0], "consumedCapacity": {"memory": "3Gi"}}]}}
    assert same_allocation(canonical, mine)
    assert not same_allocation(allocation(_assignment((0,)), 3072, "u1"), mine)
    assert not same_allocation(allocation(_assignment(), 4096, "u1"), mine)
    assert not same_allocation(None, mine)


def test_claim_memory_is_the_largest_growth_and_at_least_one_unit() -> None:
    assert claim_mib([3072], 256) == 3072
    assert claim_mib([100], 256) == 256  # a sharer whose persistent memory is below one unit
    assert claim_mib([16384, 16000], 256) == 16384


def _claim(name: str, results: list[tuple[str, str, str]], *, ours: bool = False) -> dict[str, Any]:
    annotations = {"gpulane.dev/job": name} if ours else {}
    return {
        "metadata": {"name": name, "namespace": "other", "uid": f"uid-{name}", "annotations": annotations},
        "status": {"allocation": {"devices": {"results": [
            {"request": "r", "driver": d, "pool": p, "device": dev, "consumedCapacity": {"memory": "4Gi"}}
            for d, p, dev in results]}}},
    }  # fmt: skip


def test_foreign_claims_hold_persistent_memory_in_a_lane_of_their_own() -> None:
    inventory = merge({}, {n: parse_node(node_body(n, 2)) for n in ("n1",)})
    claims = [
        parse_claim(_claim("x", [("gpu.gpulane.dev", "n1", "gpu-1"), ("gpu.gpulane.dev", "n1", "gpu-0")])),
        parse_claim(_claim("mine", [("gpu.gpulane.dev", "n1", "gpu-0")], ours=True)),  # counted through its pod
        parse_claim(_claim("nvidia", [("gpu.nvidia.com", "n1", "gpu-0")])),  # another driver's device
        parse_claim(_claim("gone", [("gpu.gpulane.dev", "n9", "gpu-0")])),  # a node gpulane does not know
    ]
    out = sorted(foreign_assignments(claims, inventory), key=lambda a: a.gpu_indices)
    assert [(a.node, a.gpu_indices, a.gpu_uuids, a.persistent_mib, a.ephemeral_mib, a.lane_size_mib) for a in out] == [
        ("n1", (0,), ("GPU-n1-0",), 4096, 0, 0),
        ("n1", (1,), ("GPU-n1-1",), 4096, 0, 0),
    ]
    assert {a.lane for a in out} == {"claim-uid-x-gpu-0", "claim-uid-x-gpu-1"}
    assert all(a.job_class is JobClass.GUARANTEED for a in out)  # never chosen as a preemption victim


@pytest.mark.parametrize(("need", "expected"), [(16384, None), (20480, "claim a-gpulane: memory request 20480Mi "
                                                "exceeds the largest gpu.gpulane.dev device (16384Mi)")])  # fmt: skip
def test_a_claim_larger_than_every_device_is_named(need: int, expected: str | None) -> None:
    inventory = merge({}, {n: parse_node(node_body(n, 2)) for n in ("n1", "n2")})
    assert oversized("a-gpulane", need, inventory) == expected
    assert oversized("a-gpulane", need, {}) is None  # no nodes yet: nothing to compare with


def test_the_job_status_names_the_claim_and_the_mode() -> None:
    rec = parse_job(_dra())
    dra = scheduled(rec, _assignment(), 0.0, "a-gpulane")["status"]
    assert dra["placement"]["claim"] == "a-gpulane" and dra["placement"]["allocation"] == "dra"
    assert dra["message"].endswith("with claim a-gpulane")
    plain = scheduled(rec, _assignment(), 0.0)["status"]["placement"]
    assert plain["claim"] is None and plain["allocation"] == "device-plugin"
