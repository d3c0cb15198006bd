"""PodResources readings: holdings per container, container fallback, and the accounting check."""

from __future__ import annotations

from agent_testkit import NODE, assigned_pod
from gpulane_agent.enforcement.attribution import CgroupOwner, attribute
from gpulane_agent.gpu.backend import GpuProcess
from gpulane_agent.lanes import pod_lanes
from gpulane_agent.podresources._proto import api_pb2
from gpulane_agent.podresources.holdings import (
    accounting_mismatches,
    holder_containers,
    holdings_from_list,
)
from gpulane_core.quantity import MIB

RES = "gpulane.dev/gpu-memory"


def _pod(name: str, container: str, ids: list[str], resource: str = RES) -> api_pb2.PodResources:
    return api_pb2.PodResources(name=name, namespace="team", containers=[
        api_pb2.ContainerResources(name="sidecar"),
        api_pb2.ContainerResources(name=container, devices=[
            api_pb2.ContainerDevices(resource_name=resource, device_ids=ids)]),
    ])


def test_holdings_keep_only_containers_with_gpulane_units() -> None:
    listed = [_pod("a", "main", ["GPU-a-m0", "GPU-a-m1"]), _pod("b", "main", ["0"], resource="nvidia.com/gpu")]
    holdings = holdings_from_list(listed, RES)
    assert [(h.key, h.container, h.device_ids) for h in holdings] == [("team/a", "main", ("GPU-a-m0", "GPU-a-m1"))]
    assert holdings[0].gpus() == frozenset({"GPU-a"})


def test_units_on_another_gpu_than_assigned_are_a_mismatch() -> None:
    lanes = pod_lanes([assigned_pod("a", uid="u-a", gpu_uuid="GPU-a"), assigned_pod("b", uid="u-b", gpu_uuid="GPU-a")],
                      NODE)
    holdings = holdings_from_list([_pod("a", "main", ["GPU-a-m0"]), _pod("b", "main", ["GPU-b-m0", "GPU-b-m1"])], RES)
    mismatches = accounting_mismatches(lanes, holdings)
    assert [(m.pod, m.assigned_gpu, m.held_gpus) for m in mismatches] == [("b", "GPU-a", ("GPU-b",))]
    assert "GPU-b" in mismatches[0].message and "GPU-a" in mismatches[0].message


def test_the_holder_names_the_container_when_the_runtime_id_is_unknown() -> None:
    lanes = pod_lanes([assigned_pod("a", uid="u-a")], NODE)
    fallback = holder_containers(lanes, holdings_from_list([_pod("a", "trainer", ["GPU-aaaa-m0"])], RES))
    assert fallback == {"u-a": "trainer"}
    usage = attribute({"GPU-aaaa": [GpuProcess(1, 5 * MIB)]}, {1: CgroupOwner("u-a", "f" * 64)}, lanes, fallback)
    assert [(u.uid, u.container, u.used_bytes) for u in usage] == [("u-a", "trainer", 5 * MIB)]


def test_a_two_gpu_pods_units_on_one_of_its_gpus_are_no_mismatch() -> None:
    two = ((0, "GPU-a"), (1, "GPU-b"))
    lanes = pod_lanes([assigned_pod("a", uid="u-a", gpus=two), assigned_pod("b", uid="u-b", gpus=two)], NODE)
    holdings = holdings_from_list([_pod("a", "main", ["GPU-b-m0"]), _pod("b", "main", ["GPU-c-m0"])], RES)
    mismatches = accounting_mismatches(lanes, holdings)
    assert [(m.pod, m.assigned_gpu, m.held_gpus) for m in mismatches] == [("b", "GPU-a,GPU-b", ("GPU-c",))]
