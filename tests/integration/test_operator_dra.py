"""The operator allocating DRA claims on a real kube-apiserver v1.37.2 (+ kwok nodes): each DRA job's pod
gets a ResourceClaim the apiserver accepts, allocated and reserved for it before the pod is bound; DRA
jobs, device-plugin jobs and claims allocated by others share one lane invariant; bad claims leave
nothing behind and say why. kwok nodes publish no ResourceSlice: the operator places from its own
inventory (node labels here), so none is needed."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpulane_agent.dra import slices
from gpulane_agent.gpu.backend import GpuInfo
from gpulane_core.quantity import parse_mib
from kubernetes import client
from opharness import (
    PLACED,
    InvariantWatcher,
    OperatorProcess,
    create_job,
    delete_job,
    get_job,
    job_manifest,
    list_jobs,
    new_pool,
    phase,
    pods_by_job,
    scheduled_condition,
    wait_for,
)

pytestmark = pytest.mark.integration
DRA_GROUP, DRA_VERSION, CLAIMS = "resource.k8s.io", "v1", "resourceclaims"
DRIVER = "gpu.gpulane.dev"
GPU_MIB = 16384


@pytest.fixture
def pool(
    crds: list[str], kubeconfig: Path, kube_api: client.ApiClient, fake_gpu_nodes: Callable[..., list[str]]
) -> Iterator[Callable[..., tuple[str, list[str]]]]:
    published: list[str] = []

    def make(nodes: int, gpus: int, *, publish: bool = True) -> tuple[str, list[str]]:
        names = fake_gpu_nodes(nodes, gpus_per_node=gpus, gpu_memory_mib=GPU_MIB)
        if publish:
            for name in names:
                publish_slice(kube_api, name, gpus)
                published.append(name)
        return new_pool(kube_api, names), names

    yield make
    custom = client.CustomObjectsApi(kube_api)
    for name in published:  # no garbage collector runs here to take them with their nodes
        custom.delete_cluster_custom_object(DRA_GROUP, DRA_VERSION, "resourceslices", slices.slice_name(name))


def publish_slice(api: client.ApiClient, node: str, gpus: int) -> None:
    """The ResourceSlice the node's agent would publish (gpulane_agent.dra.slices); kwok nodes have no agent.
    Its GPUs carry the UUIDs the operator gives a node known from its labels (GPU-<node>-<index>); the
    Node owns it, so deleting the node collects it."""
    infos = [GpuInfo(i, f"GPU-{node}-{i}", "Fake-GPU-16G", GPU_MIB << 20) for i in range(gpus)]
    uid = client.CoreV1Api(api).read_node(node).metadata.uid
    body = slices.body(node, uid, slices.slice_spec(node, infos, {}, 256), 1)
    client.CustomObjectsApi(api).create_cluster_custom_object(DRA_GROUP, DRA_VERSION, "resourceslices", body)


def dra_job(name: str, persistent: str, ephemeral: str, selectors: list[str] | None = None) -> dict[str, Any]:
    manifest = job_manifest(name, persistent, ephemeral)
    manifest["spec"]["allocation"] = "dra"
    if selectors:
        manifest["spec"]["deviceSelectors"] = selectors
    return manifest


def claims(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(DRA_GROUP, DRA_VERSION, namespace, CLAIMS)
    return {c["metadata"]["name"]: c for c in items["items"]}


def placed(api: client.ApiClient, namespace: str, names: list[str]) -> dict[str, Any] | None:
    jobs = list_jobs(api, namespace)
    return jobs if all(n in jobs and phase(jobs[n]) in PLACED for n in names) else None


def device_use(all_claims: dict[str, dict[str, Any]]) -> dict[tuple[str, str], int]:
    """MiB the allocations consume per (pool, device): what a DRA allocator would account."""
    use: dict[tuple[str, str], int] = defaultdict(int)
    for claim in all_claims.values():
        for r in ((claim.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results", ()):
            use[(r["pool"], r["device"])] += parse_mib(r["consumedCapacity"]["memory"])
    return dict(use)


def check_claim_of(job: dict[str, Any], pod: Any, claim: dict[str, Any]) -> None:
    """The claim is the pod's, allocated where the job was placed and reserved for the pod."""
    placement = job["status"]["placement"]
    assert placement["claim"] == pod.metadata.name == claim["metadata"]["name"]
    assert placement["allocation"] == "dra"
    (owner,) = claim["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Pod", pod.metadata.uid, True)
    ann = claim["metadata"]["annotations"]
    assert ann["gpulane.dev/job"] == job["metadata"]["name"] and ann["gpulane.dev/lane"] == placement["lane"]
    status = claim["status"]
    assert status["reservedFor"] == [{"resource": "pods", "name": pod.metadata.name, "uid": pod.metadata.uid}]
    results = status["allocation"]["devices"]["results"]
    assert [(r["driver"], r["pool"], r["device"]) for r in results] == [
        (DRIVER, placement["node"], f"gpu-{i}") for i in placement["gpuIndices"]
    ]
    assert all(r["shareID"] == str(uuid.UUID(r["shareID"])) for r in results)
    assert status["allocation"]["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [placement["node"]]
    assert pod.spec.node_name == placement["node"] and pod.spec.scheduler_name == "gpulane"
    assert [c.resource_claim_name for c in pod.spec.resource_claims] == [pod.metadata.name]
    assert "gpulane.dev/gpu-memory" not in (pod.spec.containers[0].resources.requests or {})


def test_eight_dra_jobs_share_two_gpus_each_with_its_own_allocated_claim(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    name, _ = pool(1, 2)
    names = [f"dra-{i}" for i in range(8)]
    with InvariantWatcher(kube_api, namespace, GPU_MIB) as watcher:
        proc = operator(name)
        for job in names:  # 8 x (1Gi + 6Gi) = 56Gi alone; 2 x 16Gi only with shared lanes
            create_job(kube_api, namespace, dra_job(job, "1Gi", "6Gi"))
        jobs = wait_for("8 DRA jobs placed", lambda: placed(kube_api, namespace, names), timeout=90)
        pods = pods_by_job(kube_api, namespace)
    assert watcher.violations == [], watcher.violations
    all_claims = claims(kube_api, namespace)
    assert sorted(all_claims) == sorted(f"{j}-gpulane" for j in names), proc.tail()
    for job in names:
        (pod,) = pods[job]
        check_claim_of(jobs[job], pod, all_claims[pod.metadata.name])
    assert len({(j["status"]["placement"]["gpuIndex"], j["status"]["placement"]["lane"]) for j in jobs.values()}) < 8
    assert all(mib <= GPU_MIB for mib in device_use(all_claims).values()), device_use(all_claims)


def test_a_dra_job_waits_for_a_published_slice_saying_so_then_runs_on_its_gpus(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    """A node known from its labels only (its agent not up yet): no claim names a device no agent serves."""
    name, (node,) = pool(1, 2, publish=False)
    operator(name)
    create_job(kube_api, namespace, dra_job("early", "1Gi", "2Gi"))
    def waiting() -> dict[str, Any] | None:
        condition = scheduled_condition(get_job(kube_api, namespace, "early"))
        return condition if "ResourceSlice" in (condition or {}).get("message", "") else None

    condition = wait_for("the job to say what it waits for", waiting, timeout=30)
    assert condition["reason"] == "Unschedulable" and "gpu.gpulane.dev ResourceSlice" in condition["message"]
    assert get_job(kube_api, namespace, "early")["status"]["phase"] == "Pending"
    assert pods_by_job(kube_api, namespace) == {} and claims(kube_api, namespace) == {}
    publish_slice(kube_api, node, 2)  # the agent is up
    try:
        job = wait_for("the job placed once the slice is published", lambda: placed(kube_api, namespace, ["early"]),
                       timeout=30)["early"]  # fmt: skip
        assert job["status"]["placement"]["node"] == node
    finally:
        client.CustomObjectsApi(kube_api).delete_cluster_custom_object(
            DRA_GROUP, DRA_VERSION, "resourceslices", slices.slice_name(node))


def test_kubectl_shows_the_claim_and_deleting_the_job_removes_its_pod_and_claim(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str, dev_binaries: Any, kubeconfig: Path,
) -> None:  # fmt: skip
    name, _ = pool(1, 1)
    operator(name)
    create_job(kube_api, namespace, dra_job("gone", "2Gi", "2Gi"))
    wait_for("placed", lambda: placed(kube_api, namespace, ["gone"]))
    assert list(claims(kube_api, namespace)) == ["gone-gpulane"]
    table = subprocess.run([str(dev_binaries.kubectl), "--kubeconfig", str(kubeconfig), "get", "gsj", "-n", namespace],
                           capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    header, row = table[0].split(), table[1].split()
    assert "CLAIM" in header and row[header.index("CLAIM")] == "gone-gpulane", table
    delete_job(kube_api, namespace, "gone")
    wait_for("pod and claim gone", lambda: (
        True if not pods_by_job(kube_api, namespace) and not claims(kube_api, namespace) else None))  # fmt: skip


def test_bad_claims_leave_no_pod_and_no_claim_and_say_why(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    name, _ = pool(1, 2)
    operator(name)
    create_job(kube_api, namespace, dra_job("huge", "20Gi", "4Gi"))
    create_job(kube_api, namespace, dra_job("colour", "1Gi", "1Gi", [f'device.attributes["{DRIVER}"].colour == "red"']))
    create_job(kube_api, namespace, dra_job("gpu1", "1Gi", "1Gi", [f'device.attributes["{DRIVER}"].index == 1']))
    wait_for("both failed", lambda: (
        True if all(phase(get_job(kube_api, namespace, n)) == "Failed" for n in ("huge", "colour")) else None))  # fmt: skip
    huge, colour = get_job(kube_api, namespace, "huge"), get_job(kube_api, namespace, "colour")
    assert huge["status"]["message"] == (
        "claim huge-gpulane: memory request 24576Mi exceeds the largest gpu.gpulane.dev device (16384Mi)"
    )
    assert '.colour' in colour["status"]["message"] and "known: device.driver" in colour["status"]["message"]
    jobs = wait_for("the selecting job placed", lambda: placed(kube_api, namespace, ["gpu1"]))
    assert jobs["gpu1"]["status"]["placement"]["gpuIndex"] == 1  # its selector chose the GPU
    assert set(pods_by_job(kube_api, namespace)) == {"gpu1"} and set(claims(kube_api, namespace)) == {"gpu1-gpulane"}
    events = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    assert any(e.involved_object.name == "huge" and "exceeds the largest" in e.message for e in events)


def foreign_claim(api: client.ApiClient, namespace: str, name: str, node: str, memory: str) -> None:
    """A claim of our driver allocated by someone else (no gpulane.dev/job annotation) on ``node``'s gpu-0."""
    body = {"apiVersion": f"{DRA_GROUP}/{DRA_VERSION}", "kind": "ResourceClaim", "metadata": {"name": name},
            "spec": {"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": DRIVER,
                     "capacity": {"requests": {"memory": memory}}}}]}}}  # fmt: skip
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(DRA_GROUP, DRA_VERSION, namespace, CLAIMS, body)
    allocation = {"devices": {"results": [{"request": "r", "driver": DRIVER, "pool": node, "device": "gpu-0",
                                           "consumedCapacity": {"memory": memory}, "shareID": str(uuid.uuid4())}]},
                  "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                      {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}  # fmt: skip
    custom.patch_namespaced_custom_object_status(DRA_GROUP, DRA_VERSION, namespace, CLAIMS, name,
                                                 {"status": {"allocation": allocation}})  # fmt: skip


def test_a_job_waits_for_memory_a_foreign_claim_holds_and_runs_once_it_is_released(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    name, (node,) = pool(1, 1)
    # Before the operator starts: kopf fills its indexes before any handler runs, so the first cycle knows
    # the claim (a claim allocated while the operator runs reaches it on another watch stream than the job).
    foreign_claim(kube_api, namespace, "theirs", node, "12Gi")
    proc = operator(name)
    create_job(kube_api, namespace, dra_job("waits", "2Gi", "4Gi"))
    job = wait_for("unschedulable", lambda: (
        j if (j := get_job(kube_api, namespace, "waits")).get("status", {}).get("conditions") and
        j["status"]["conditions"][0].get("reason") == "Unschedulable" else None))  # fmt: skip
    assert "largest free is 4Gi" in job["status"]["message"], job["status"]
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(DRA_GROUP, DRA_VERSION, namespace, CLAIMS, "theirs")
    wait_for("placed once the claim is gone", lambda: placed(kube_api, namespace, ["waits"]), timeout=30)
    assert "Traceback" not in proc.tail(20000), proc.tail()


def test_device_plugin_and_dra_jobs_and_a_foreign_claim_share_one_invariant(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    name, (node,) = pool(1, 2)
    # Someone else's claim holds 12Gi of gpu-0: gpulane must count it, though it did not allocate it.
    foreign_claim(kube_api, namespace, "theirs", node, "12Gi")
    names = [f"mix-{i}" for i in range(5)]
    with InvariantWatcher(kube_api, namespace, GPU_MIB) as watcher:
        proc = operator(name)
        # 5 x (1Gi + 3Gi) = 20Gi: they fit only if gpu-0 takes one job (4Gi are left there) and gpu-1 four;
        # an operator blind to the foreign claim would put more on gpu-0.
        for i, job in enumerate(names):
            manifest = dra_job(job, "1Gi", "3Gi") if i % 2 else job_manifest(job, "1Gi", "3Gi")
            create_job(kube_api, namespace, manifest)
        try:
            jobs = wait_for("5 mixed jobs placed", lambda: placed(kube_api, namespace, names), timeout=90)
        except AssertionError as exc:
            states = {n: (phase(j), (j.get("status") or {}).get("message")) for n, j in list_jobs(kube_api, namespace).items()}
            raise AssertionError(f"{exc}: {states}\n{proc.tail()}") from None
    assert watcher.violations == [], watcher.violations
    # The invariant with the foreign claim: its 12Gi persistent + what gpulane committed on gpu-0 fits.
    pods = pods_by_job(kube_api, namespace)
    lanes: dict[int, dict[str, int]] = defaultdict(dict)
    persistent: dict[int, int] = defaultdict(int)
    for job in names:
        (pod,) = pods[job]
        ann = pod.metadata.annotations
        gpu = int(ann["gpulane.dev/gpu-index"])
        persistent[gpu] += int(ann["gpulane.dev/persistent-mib"])
        lanes[gpu][ann["gpulane.dev/lane"]] = int(ann["gpulane.dev/lane-size-mib"])
    assert 12288 + persistent[0] + sum(lanes[0].values()) <= GPU_MIB, (persistent, lanes)
    assert persistent[1] + sum(lanes[1].values()) <= GPU_MIB
    modes = {j["metadata"]["name"]: j["status"]["placement"]["allocation"] for j in jobs.values()}
    assert sorted(modes.values()) == ["device-plugin"] * 3 + ["dra"] * 2
    assert set(claims(kube_api, namespace)) == {"theirs"} | {f"{n}-gpulane" for n in names[1::2]}


def test_a_two_gpu_dra_job_gets_one_result_per_gpu(
    pool: Callable[..., tuple[str, list[str]]], operator: Callable[..., OperatorProcess],
    kube_api: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    name, _ = pool(1, 2)
    operator(name)
    manifest = dra_job("pair", "4Gi", "4Gi")
    manifest["spec"]["gpus"] = 2
    create_job(kube_api, namespace, manifest)
    jobs = wait_for("placed", lambda: placed(kube_api, namespace, ["pair"]))
    (pod,) = pods_by_job(kube_api, namespace)["pair"]
    claim = claims(kube_api, namespace)["pair-gpulane"]
    check_claim_of(jobs["pair"], pod, claim)
    assert claim["spec"]["devices"]["requests"][0]["exactly"]["count"] == 2
    assert sorted(r["device"] for r in claim["status"]["allocation"]["devices"]["results"]) == ["gpu-0", "gpu-1"]


def test_kill_9_while_allocating_then_restart_allocates_each_claim_once_where_its_pod_says(
    pool: Callable[..., tuple[str, list[str]]], kube_api: client.ApiClient, namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    name, _ = pool(2, 2)
    names = [f"k-{i}" for i in range(16)]
    for job in names:  # 16 x (1Gi + 4Gi) = 80Gi alone, 64Gi of GPUs: needs shared lanes
        create_job(kube_api, namespace, dra_job(job, "1Gi", "4Gi"))
    core = client.CoreV1Api(kube_api)
    with InvariantWatcher(kube_api, namespace, GPU_MIB) as watcher:
        slow = {"GPULANE_OPERATOR_SCHEDULING_MAX_CONCURRENT_REQUESTS": "1"}  # cut the placements in the middle
        first = OperatorProcess(namespace, name, tmp_path / "first.log", "--standalone", env=slow).start()
        try:
            wait_for("4 pods", lambda: len(core.list_namespaced_pod(namespace).items) >= 4, timeout=60, every=0.02)
        finally:
            first.kill9()
        at_kill = core.list_namespaced_pod(namespace).items
        claims_at_kill = claims(kube_api, namespace).values()
        with OperatorProcess(namespace, name, tmp_path / "second.log", "--standalone") as second:
            jobs = wait_for("all placed after the restart", lambda: placed(kube_api, namespace, names), timeout=90)
            time.sleep(1.0)  # a late cycle would show itself here
            pods = pods_by_job(kube_api, namespace)
            all_claims = claims(kube_api, namespace)
            assert "Traceback" not in second.tail(20000), second.tail()
    assert watcher.violations == [], watcher.violations
    assert {job: len(p) for job, p in pods.items()} == dict.fromkeys(names, 1)
    assert sorted(all_claims) == sorted(f"{j}-gpulane" for j in names)
    for job in names:
        check_claim_of(jobs[job], pods[job][0], all_claims[f"{job}-gpulane"])
    assert all(mib <= GPU_MIB for mib in device_use(all_claims).values())
    allocated = sum(1 for c in claims_at_kill if (c.get("status") or {}).get("allocation"))
    print(f"killed with {len(at_kill)} pods ({sum(1 for p in at_kill if p.spec.node_name)} bound), "
          f"{len(claims_at_kill)} claims ({allocated} allocated)")
