"""Fake GPU node manifests: contract resource names, 256 MiB units, GFD labels, kwok annotation."""

from __future__ import annotations

import pytest
from gpulane_dev.fakenodes import FakeGpuNode, FakeNodeError, fleet


def test_manifest_advertises_gpus_in_memory_units() -> None:
    node = FakeGpuNode("gpu-0", gpus=4, gpu_memory_mib=16384).manifest()
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["status"]["capacity"] == node["status"]["allocatable"] == {
        "cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4", "gpulane.dev/gpu-memory": "256",
    }  # fmt: skip
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "Fake-GPU-16G"
    assert labels["nvidia.com/gpu.memory"] == "16384"
    assert labels["nvidia.com/gpu.count"] == "4"
    assert labels["gpulane.dev/fake-gpu"] == "true"
    assert labels["kubernetes.io/hostname"] == "gpu-0"


def test_custom_unit_and_product() -> None:
    node = FakeGpuNode("n", gpus=2, gpu_memory_mib=40960, memory_unit_mib=512, product="A100-SXM4-40GB")
    assert node.memory_units == 160
    assert node.manifest()["metadata"]["labels"]["nvidia.com/gpu.product"] == "A100-SXM4-40GB"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name: '' must be 1..253 characters"),
        ({"name": "n", "gpus": -1}, "gpus: -1 must be >= 0"),
        ({"name": "n", "gpu_memory_mib": 0}, "gpu_memory_mib: 0 must be > 0"),
        ({"name": "n", "gpu_memory_mib": 1000}, "gpu_memory_mib: 1000 must be a multiple of memory_unit_mib 256"),
    ],
)
def test_bad_nodes_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FakeNodeError) as info:
        FakeGpuNode(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_fleet_names_nodes_by_prefix_and_index() -> None:
    nodes = fleet(3, "dc", gpus=2, gpu_memory_mib=8192)
    assert [n.name for n in nodes] == ["dc-0", "dc-1", "dc-2"]
    assert {n.memory_units for n in nodes} == {64}
    with pytest.raises(FakeNodeError, match="count: 0 must be >= 1"):
        fleet(0, "dc")
