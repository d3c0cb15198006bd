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


def device_consumption(cluster: E2ECluster, pool: str, device: str) -> int:
    """MiB all allocated claims, in every namespace, consume on one device."""
    found = client.CustomObjectsApi(cluster.api).list_cluster_custom_object("resource.k8s.io", "v1", "resourceclaims")
    return sum(mib(r["consumedCapacity"]["memory"]) for c in found["items"]
               for r in ((c.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results", ())
               if (r["pool"], r["device"]) == (pool, device))  # fmt: skip


def dra_job(name: str, persistent: str, ephemeral: str, args: list[str], **kw: Any) -> dict[str, Any]:
    manifest = workload_job(name, persistent, ephemeral, args, **kw)
    manifest["spec"]["allocation"] = "dra"
    return manifest


def agent_log(cluster: E2ECluster) -> str:
    return cluster.agent_log(cluster.nodes[0])


def switch_to(cluster: E2ECluster, allocation: str) -> None:
    """Upgrade the chart to `allocation` (dra or both) and wait until the new agent serves DRA."""
    node = cluster.nodes[0]
    install_chart(cluster, ["--set", f"nodeAgent.allocation={allocation}"], wait_device_plugin=allocation == "both")

    def published() -> bool:
        ours = [s for s in slices(cluster) if s["spec"].get("nodeName") == node]
        return len(ours) == 1 and len(ours[0]["spec"].get("devices") or []) == cluster.gpus_per_node

    wait_for(f"the agent's ResourceSlice for {node} with {cluster.gpus_per_node} devices", published, timeout=120)
    wait_for("the real kubelet registering the agent's DRA plugin",
             lambda: f"the kubelet registered DRA driver {DRIVER}" in agent_log(cluster), timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def dra(e2e_cluster: E2ECluster) -> Iterator[E2ECluster]:
    switch_to(e2e_cluster, "dra")
    try:
        yield e2e_cluster
    finally:
        install_chart(e2e_cluster)  # back to device-plugin mode for the other modules


def gpunode_claims(cluster: E2ECluster, index: int) -> tuple[list[dict[str, Any]], int]:
    gpu = next(g for g in cluster.gpunode(cluster.nodes[0])["status"]["gpus"] if g["index"] == index)
    return list(gpu.get("draClaims") or []), int(gpu["freeMiB"])


def test_a_claim_allocated_by_gpulane_is_prepared_by_the_kubelet_and_freed_with_the_pod(dra: E2ECluster, ns: str) -> None:
    node = dra.nodes[0]
    script = "env | grep -E '^(GPULANE|CUDA|NVIDIA)_' | sort; echo READY; sleep 600"
    create_job(dra.api, ns, dra_job("claimed", "1Gi", "2Gi", [script], command=("sh", "-c")))
    wait_phases(dra, ns, ["claimed"], "Running", 120)
    job = get_job(dra.api, ns, "claimed")
    claim_name = job["status"]["placement"]["claim"]
    claim = claims(dra, ns)[claim_name]
    pod = job_pods(dra, ns)["claimed"]
    # gpulane wrote the allocation, consistent with its lane decision, reserved it for the pod, and owns
    # the claim through the pod.
    annotations = claim["metadata"]["annotations"]
    assert annotations["gpulane.dev/job"] == "claimed"
    assert annotations["gpulane.dev/lane"] == job["status"]["placement"]["lane"]
    assert claim["metadata"]["ownerReferences"][0]["uid"] == pod.metadata.uid
    assert [r["uid"] for r in claim["status"]["reservedFor"]] == [pod.metadata.uid]
    (result,) = claim["status"]["allocation"]["devices"]["results"]
    assignment = pod_assignment(pod, ns)
    index = assignment.gpu_indices[0]
    assert (result["driver"], result["pool"], result["device"]) == (DRIVER, node, f"gpu-{index}")
    consumed = mib(result["consumedCapacity"]["memory"])
    assert consumed >= 1024
    # The container saw, through CDI, exactly the environment the device plugin's Allocate gives the same pod.
    def logged() -> str | None:
        out = dra.kubectl("logs", "-n", ns, pod.metadata.name)
        return out if "READY" in out else None

    log = wait_for("the container's environment in its log", logged, timeout=60)
    seen = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
    view = PodView(ns, pod.metadata.name, pod.metadata.uid, node, annotations=pod.metadata.annotations,
                   labels=pod.metadata.labels)  # fmt: skip
    assert seen == dict(container_grant(parse_allocation(view), COORDINATOR_SOCKET, FAKE_GPU_DIR).envs)
    uid = claim["metadata"]["uid"]
    assert f"prepared claim {ns}/{claim_name} (uid {uid})" in agent_log(dra)
    assert dra.state_dir is not None
    cdi_dir = Path(dra.state_dir) / "nodes" / node / "cdi"
    assert [p.name for p in cdi_dir.glob(f"*{uid}*")] == [f"{DRIVER}-{uid}.json"]
    # The GPUNode shows the prepared claim and the GPU's memory less it.
    listed = wait_for("the GPUNode listing the claim", lambda: gpunode_claims(dra, index) if gpunode_claims(dra, index)[0] else None,
                      timeout=30)  # fmt: skip
    assert [(c["name"], c["memoryMiB"]) for c in listed[0]] == [(claim_name, consumed)]
    assert listed[1] == GPU_MIB - consumed
    # Deleting the job deletes its pod: the kubelet unprepares the claim, the CDI spec goes, the claim is
    # deleted, and the GPU's memory is free again on the GPUNode and for any DRA allocator.
    delete_job(dra.api, ns, "claimed")
    wait_for("the kubelet unpreparing the claim",
             lambda: f"unprepared claim {ns}/{claim_name} (uid {uid})" in agent_log(dra), timeout=90)  # fmt: skip
    assert not list(cdi_dir.glob(f"*{uid}*"))
    wait_for("the claim to be deleted with the pod", lambda: claim_name not in claims(dra, ns), timeout=90)
    wait_for("the GPUNode dropping the claim", lambda: gpunode_claims(dra, index) == ([], GPU_MIB), timeout=30)
    # What a DRA allocator sees: the slice's device at its full capacity, and no claim consuming any of it.
    (ours,) = [s for s in slices(dra) if s["spec"].get("nodeName") == node]
    (device,) = [d for d in ours["spec"]["devices"] if d["name"] == f"gpu-{index}"]
    assert mib(device["capacity"]["memory"]["value"]) == GPU_MIB
    assert device_consumption(dra, node, f"gpu-{index}") == 0


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
    # Each claim is owned by its pod: the resourceclaim controller deletes it once the pod is done, so
    # nothing stays allocated after the jobs.
    wait_for("every claim deleted after its pod ended", lambda: claims(dra, ns) == {}, timeout=90)
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


def test_device_plugin_and_dra_jobs_share_a_gpu_under_one_invariant(dra: E2ECluster, ns: str) -> None:
    """nodeAgent.allocation=both: the agent serves the device plugin and the DRA plugin side by side, and
    a device-plugin job and two DRA jobs pinned to its GPU run on it at once, inside one lane invariant."""
    switch_to(dra, "both")
    long = ["--iterations", "40", "--iteration-seconds", "0.3"]
    with InvariantWatcher(dra.api, ns, GPU_MIB) as watcher:
        create_job(dra.api, ns, workload_job("plugin-a", "2Gi", "4Gi", long))  # no spec.allocation: device-plugin
        wait_phases(dra, ns, ["plugin-a"], "Running", 120)
        index = int(get_job(dra.api, ns, "plugin-a")["status"]["placement"]["gpuIndex"])
        for name in ("claim-a", "claim-b"):
            job = dra_job(name, "2Gi", "4Gi", ["--iterations", "5", "--iteration-seconds", "0.3"])
            job["spec"]["deviceSelectors"] = [f'device.attributes["{DRIVER}"].index == {index}']
            create_job(dra.api, ns, job)
        create_job(dra.api, ns, workload_job("plugin-b", "2Gi", "4Gi", ["--iterations", "5", "--iteration-seconds", "0.3"]))
        wait_phases(dra, ns, ["claim-a", "claim-b"], "Running", 120)
        assert get_job(dra.api, ns, "plugin-a")["status"]["phase"] == "Running"  # all three on the GPU at once
        wait_phases(dra, ns, ["plugin-a", "plugin-b", "claim-a", "claim-b"], "Succeeded", 300)
    assert watcher.events > 0 and watcher.violations == []
    pods = job_pods(dra, ns)
    for name in ("claim-a", "claim-b"):
        assert pod_assignment(pods[name], ns).gpu_indices == (index,)
        assert (pods[name].spec.resource_claims or [])[0].resource_claim_name
    assert not any("gpulane.dev/gpu-memory" in (c.resources.limits or {}) for c in pods["claim-a"].spec.containers)
    assert "gpulane.dev/gpu-memory" in (pods["plugin-a"].spec.containers[0].resources.limits or {})
