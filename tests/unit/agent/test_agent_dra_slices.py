"""The ResourceSlice builder: one device per healthy GPU, memory in whole units, and the read-back comparison."""

from __future__ import annotations

import pytest
from gpulane_agent.dra import slices
from gpulane_agent.gpu.backend import GpuInfo
from gpulane_core.quantity import MIB

NODE = "node-a"
GPUS = (GpuInfo(1, "GPU-bbbb", "H100", 80 * 1024 * MIB), GpuInfo(0, "GPU-aaaa", "A100", 16384 * MIB + 100 * MIB))


def test_one_device_per_gpu_with_attributes_shared_memory_and_a_unit_request_policy() -> None:
    spec = slices.slice_spec(NODE, GPUS, {}, unit_mib=256)
    assert spec["driver"] == "gpu.gpulane.dev" and spec["nodeName"] == NODE
    assert spec["pool"] == {"name": NODE, "resourceSliceCount": 1}
    first, second = spec["devices"]
    assert first == {
        "name": "gpu-0",
        "allowMultipleAllocations": True,
        "attributes": {"uuid": {"string": "GPU-aaaa"}, "model": {"string": "A100"}, "index": {"int": 0}},
        "capacity": {
            "memory": {
                "value": "16384Mi",  # the partial unit (100 MiB) is not offered
                "requestPolicy": {"default": "256Mi", "validRange": {"min": "256Mi", "step": "256Mi"}},
            }
        },
    }
    assert second["name"] == "gpu-1" and second["capacity"]["memory"]["value"] == "81920Mi"


def test_unhealthy_gpus_are_left_out_and_an_all_unhealthy_node_keeps_an_empty_slice() -> None:
    assert [d["name"] for d in slices.slice_spec(NODE, GPUS, {0: False}, 256)["devices"]] == ["gpu-1"]
    assert slices.slice_spec(NODE, GPUS, {0: False, 1: False}, 256)["devices"] == []


def test_a_spec_read_back_canonicalised_compares_equal_and_a_change_does_not() -> None:
    spec = slices.slice_spec(NODE, GPUS, {}, 256)
    back = slices.with_generation(spec, 7)
    back["devices"] = [dict(d) for d in spec["devices"]]
    back["devices"][0] = {**back["devices"][0], "capacity": {"memory": {
        "value": "16Gi", "requestPolicy": {"default": "256Mi", "validRange": {"min": "256Mi", "step": "256Mi"}}}}}  # fmt: skip
    assert slices.comparable(back) == slices.comparable(spec)
    empty = slices.slice_spec(NODE, GPUS, {0: False, 1: False}, 256)
    assert slices.comparable({k: v for k, v in empty.items() if k != "devices"}) == slices.comparable(empty)
    assert slices.comparable(slices.slice_spec(NODE, GPUS, {0: False}, 256)) != slices.comparable(spec)
    assert slices.comparable(slices.slice_spec(NODE, GPUS, {}, 512)) != slices.comparable(spec)


def test_the_body_is_owned_by_the_node_when_its_uid_is_known() -> None:
    spec = slices.slice_spec(NODE, GPUS, {}, 256)
    body = slices.body(NODE, "uid-1", spec, 3)
    assert body["apiVersion"] == "resource.k8s.io/v1" and body["kind"] == "ResourceSlice"
    assert body["metadata"]["name"] == "node-a-gpu.gpulane.dev"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert body["spec"]["pool"]["generation"] == 3
    assert "ownerReferences" not in slices.body(NODE, "", spec, 1)["metadata"]
    with pytest.raises(ValueError, match="too long"):
        slices.slice_name("n" * 250)
