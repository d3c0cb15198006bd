"""DRA mode on the real node: gpulane allocates the claim, the real kubelet calls the agent's DRA plugin,
containerd 2.x injects the CDI device, and the container sees the same environment Allocate gives.

The module switches the installed chart to `nodeAgent.allocation=dra` (the agent serves the DRA kubelet
plugin and the node's ResourceSlice instead of the device plugin) and back to device-plugin at the end,
so the other modules keep running in the default mode on the same node.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpulane_agent.deviceplugin.allocate import container_grant, parse_allocation
from gpulane_agent.kube.api import PodView
from kubernetes import client
from opharness import InvariantWatcher, create_job, delete_job, get_job
from realcluster import (
    TURN_LINE,
    E2ECluster,
    install_chart,
    job_pods,
    pod_assignment,
    wait_for,
    wait_phases,
    workload_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(900)]

DRIVER = "gpu.gpulane.dev"
COORDINATOR_SOCKET = "/var/run/gpulane/coordinator.sock"
FAKE_GPU_DIR = "/run/gpulane/fake-gpu/processes"
GPU_MIB = 16384


def slices(cluster: E2ECluster) -> list[dict[str, Any]]:
    found = client.CustomObjectsApi(cluster.api).list_cluster_custom_object("resource.k8s.io", "v1", "resourceslices")
    return [s for s in found["items"] if s["spec"]["driver"] == DRIVER]


def claims(cluster: E2ECluster, namespace: str) -> dict[str, dict[str, Any]]:
    found = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        "resource.k8s.io", "v1", namespace, "resourceclaims")
    return {c["metadata"]["name"]: c for c in found["items"]}


def mib(quantity: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity) // (1 << 20)


def dra_job(name: str, persistent: str, ephemeral: str, args: list[str], **kw: Any) -> dict[str, Any]:
    manifest = workload_job(name, persistent, ephemeral, args, **kw)
    manifest["spec"]["allocation"] = "dra"
    return manifest


def agent_log(cluster: E2ECluster) -> str:
    return cluster.agent_log(cluster.nodes[0])


@pytest.fixture(scope="module")
def dra(e2e_cluster: E2ECluster) -> Iterator[E2ECluster]:
    node = e2e_cluster.nodes[0]
    install_chart(e2e_cluster, ["--set", "nodeAgent.allocation=dra"], wait_device_plugin=False)

    def published() -> bool:
        ours = [s for s in slices(e2e_cluster) if s["spec"].get("nodeName") == node]
        return len(ours) == 1 and len(ours[0]["spec"].get("devices") or []) == e2e_cluster.gpus_per_node

    wait_for(f"the agent's ResourceSlice for {node} with {e2e_cluster.gpus_per_node} devices", published, timeout=120)
    wait_for("the real kubelet registering the agent's DRA plugin",
             lambda: f"the kubelet registered DRA driver {DRIVER}" in agent_log(e2e_cluster), timeout=60)  # fmt: skip
    try:
        yield e2e_cluster
    finally:
        install_chart(e2e_cluster)  # back to device-plugin mode for the other modules


def test_a_claim_allocated_by_gpulane_is_prepared_by_the_kubelet_and_freed_with_the_pod(dra: E2ECluster, ns: str) -> None:
    node = dra.nodes[0]
    script = "env | grep -E '^(GPULANE|CUDA|NVIDIA)_' | sort"
    create_job(dra.api, ns, dra_job("claimed", "1Gi", "2Gi", [script], command=("sh", "-c")))
    wait_phases(dra, ns, ["claimed"], "Succeeded", 120)
    job = get_job(dra.api, ns, "claimed")
    claim_name = job["status"]["placement"]["claim"]
    claim = claims(dra, ns)[claim_name]
    pod = job_pods(dra, ns)["claimed"]
    # gpulane wrote the allocation, consistent with its lane decision, and owns the claim through the pod.
    assert claim["metadata"]["annotations"]["gpulane.dev/job"] == f"{ns}/claimed"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == pod.metadata.uid
    assert claim["metadata"]["annotations"]["gpulane.dev/lane"] == job["status"]["placement"]["lane"]
    (result,) = claim["status"]["allocation"]["devices"]["results"]
    assignment = pod_assignment(pod, ns)
    assert (result["driver"], result["pool"], result["device"]) == (DRIVER, node, f"gpu-{assignment.gpu_indices[0]}")
    assert mib(result["consumedCapacity"]["memory"]) >= 1024
    # The container saw, through CDI, exactly the environment the device plugin's Allocate gives the same pod.
    seen = dict(line.split("=", 1) for line in dra.kubectl("logs", "-n", ns, pod.metadata.name).splitlines() if "=" in line)
    view = PodView(ns, pod.metadata.name, pod.metadata.uid, node, annotations=pod.metadata.annotations,
                   labels=pod.metadata.labels)  # fmt: skip
    expected = dict(container_grant(parse_allocation(view), COORDINATOR_SOCKET, FAKE_GPU_DIR).envs)
    assert seen == expected
    uid = claim["metadata"]["uid"]
    assert f"prepared claim {ns}/{claim_name} (uid {uid})" in agent_log(dra)
    # The pod ended: the kubelet unprepared the claim and the CDI spec is gone from the node.
    wait_for("the kubelet unpreparing the claim",
             lambda: f"unprepared claim {ns}/{claim_name} (uid {uid})" in agent_log(dra), timeout=60)  # fmt: skip
    assert dra.state_dir is not None
    cdi_dir = Path(dra.state_dir) / "nodes" / node / "cdi"
    assert not list(cdi_dir.glob(f"*{uid}*"))
    # Deleting the job deletes its pod, and the garbage collector the claim: the device's capacity is free.
    delete_job(dra.api, ns, "claimed")
    wait_for("the claim to be deleted with the pod", lambda: claim_name not in claims(dra, ns), timeout=90)


def test_eight_jobs_share_two_gpus_through_dra(dra: E2ECluster, ns: str) -> None:
    """8 jobs of 1Gi + 6Gi on 2 x 16Gi through claims: lanes shared turn by turn, consumed capacity within every GPU."""
    iterations = 5
    names = [f"dra-{i}" for i in range(8)]
    consumed: dict[str, int] = defaultdict(int)
    with InvariantWatcher(dra.api, ns, GPU_MIB) as watcher:
        for name in names:
            create_job(dra.api, ns, dra_job(name, "1Gi", "6Gi",
                       ["--iterations", str(iterations), "--iteration-seconds", "0.4"]))  # fmt: skip
        wait_phases(dra, ns, names, "Running", 240)  # all eight at once: 56Gi of demand on 32Gi
        for claim in claims(dra, ns).values():
            for result in claim["status"]["allocation"]["devices"]["results"]:
                consumed[result["device"]] += mib(result["consumedCapacity"]["memory"])
        wait_phases(dra, ns, names, "Succeeded", 300)
    assert watcher.events > 0 and watcher.violations == []
    # What the DRA allocator would trust: the claims' consumed capacity fits every device.
    assert consumed and all(total <= GPU_MIB for total in consumed.values()), dict(consumed)
    pods = job_pods(dra, ns)
    lanes: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        log = dra.kubectl("logs", "-n", ns, pods[name].metadata.name)
        turns = list(TURN_LINE.finditer(log))
        assert [int(m.group(2)) for m in turns] == list(range(1, iterations + 1)), log
        for m in turns:
            lanes.setdefault(m.group(4), []).append((int(m.group(5)), m.group(1)))
    shared = {lane: t for lane, t in lanes.items() if len({job for _, job in t}) >= 2}
    assert shared, f"no lane was shared: {sorted(lanes)}"
    for lane, turns in shared.items():
        order = [job for _, job in sorted(turns)]
        assert sum(1 for a, b in itertools.pairwise(order) if a != b) >= iterations, f"lane {lane}: {order}"


def test_bad_claims_get_clear_errors_and_leave_nothing_allocated(dra: E2ECluster, ns: str) -> None:
    create_job(dra.api, ns, dra_job("too-big", "20Gi", "1Gi", ["--iterations", "1"]))
    unknown = dra_job("unknown-attr", "1Gi", "1Gi", ["--iterations", "1"])
    unknown["spec"]["deviceSelectors"] = [f'device.attributes["{DRIVER}"].vendor == "acme"']
    create_job(dra.api, ns, unknown)

    def settled(name: str) -> dict[str, Any] | None:
        status = get_job(dra.api, ns, name).get("status") or {}
        scheduled = [c for c in status.get("conditions") or [] if c.get("type") == "Scheduled"]
        return scheduled[0] if scheduled and scheduled[0].get("status") == "False" and status.get("phase") != "Pending" else None

    big = wait_for("too-big to be refused", lambda: settled("too-big"), timeout=60)
    assert "memory" in big["message"] and str(GPU_MIB) in big["message"], big
    attr = wait_for("unknown-attr to be refused", lambda: settled("unknown-attr"), timeout=60)
    assert "vendor" in attr["message"] and "model" in attr["message"], attr
    assert job_pods(dra, ns) == {}
    assert claims(dra, ns) == {}
