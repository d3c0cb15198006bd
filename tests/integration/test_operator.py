"""The operator end to end on a real kube-apiserver (+ kwok): placement with sharing, the lane
invariant at every observed moment, unschedulable reasons, lane release on deletion, preemption."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from opharness import (
    GPUNODES,
    GROUP,
    PLACED,
    VERSION,
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


@pytest.fixture
def pool(
    crds: list[str], kubeconfig: Path, kube_api: client.ApiClient, fake_gpu_nodes: Callable[..., list[str]]
) -> Callable[..., str]:
    """pool(nodes, gpus): fake nodes labelled with a fresh pool name the operator is scoped to."""

    def make(nodes: int, gpus: int) -> str:
        return new_pool(kube_api, fake_gpu_nodes(nodes, gpus_per_node=gpus, gpu_memory_mib=16384))

    return make


def all_placed(api: client.ApiClient, namespace: str, n: int) -> dict[str, Any] | None:
    jobs = list_jobs(api, namespace)
    return jobs if len(jobs) == n and all(phase(j) in PLACED for j in jobs.values()) else None


def test_twenty_jobs_share_four_gpus_and_the_invariant_always_holds(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    name = pool(2, 2)
    with InvariantWatcher(kube_api, namespace, 16384) as watcher:
        proc = operator(name)
        for i in range(20):  # 20 x (512Mi + 6Gi) = 130Gi alone; 4 x 16Gi only with shared lanes
            create_job(kube_api, namespace, job_manifest(f"job-{i}", "512Mi", "6Gi"))
        jobs = wait_for("20 jobs placed", lambda: all_placed(kube_api, namespace, 20), timeout=60)
        pods = pods_by_job(kube_api, namespace)
    assert watcher.violations == [], watcher.violations
    assert watcher.events >= 20
    assert {job: len(p) for job, p in pods.items()} == {f"job-{i}": 1 for i in range(20)}, proc.tail()
    shared = {(j["status"]["placement"]["node"], j["status"]["placement"]["gpuIndex"], j["status"]["placement"]["lane"])
              for j in jobs.values()}  # fmt: skip
    assert len(shared) < 20  # lanes are shared
    for job in jobs.values():
        pod = pods[job["metadata"]["name"]][0]
        assert pod.spec.node_name == job["status"]["placement"]["node"]
        assert pod.spec.scheduler_name == "gpulane"
        assert scheduled_condition(job)["status"] == "True"


def test_an_oversized_job_stays_pending_with_the_shortfall_named(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    operator(pool(1, 2))
    create_job(kube_api, namespace, job_manifest("too-big", "40Gi", "8Gi"))
    job = wait_for("an Unschedulable condition", lambda: (
        j if scheduled_condition(j := get_job(kube_api, namespace, "too-big")).get("reason") == "Unschedulable" else None
    ))  # fmt: skip
    cond = scheduled_condition(job)
    assert phase(job) == "Pending" and cond["status"] == "False"
    assert cond["message"] == "job needs 40Gi persistent + 8Gi ephemeral = 48Gi but the largest GPU holds 16Gi"
    assert job["status"]["queuePosition"] == 1
    assert pods_by_job(kube_api, namespace) == {}


def test_deleting_a_job_frees_its_lane_for_a_waiting_job(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    operator(pool(1, 1))
    create_job(kube_api, namespace, job_manifest("first", "8Gi", "8Gi"))
    wait_for("first placed", lambda: phase(get_job(kube_api, namespace, "first")) in PLACED)
    create_job(kube_api, namespace, job_manifest("second", "8Gi", "8Gi"))
    waiting = wait_for("second unschedulable", lambda: (
        j if scheduled_condition(j := get_job(kube_api, namespace, "second")).get("reason") == "Unschedulable" else None
    ))  # fmt: skip
    assert "largest free is 0Mi" in scheduled_condition(waiting)["message"]
    delete_job(kube_api, namespace, "first")
    wait_for("second placed", lambda: phase(get_job(kube_api, namespace, "second")) in PLACED)
    pods = pods_by_job(kube_api, namespace)
    assert list(pods) == ["second"]  # the finalizer removed the first job's pod
    wait_for("first job gone", lambda: "first" not in list_jobs(kube_api, namespace))


def test_guaranteed_job_preempts_best_effort(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    operator(pool(1, 1))
    create_job(kube_api, namespace, job_manifest("scavenger", "6Gi", "8Gi", cls="best-effort"))
    wait_for("best-effort placed", lambda: phase(get_job(kube_api, namespace, "scavenger")) in PLACED)
    create_job(kube_api, namespace, job_manifest("deadline", "4Gi", "10Gi"))
    wait_for("guaranteed placed", lambda: phase(get_job(kube_api, namespace, "deadline")) in PLACED, timeout=60)
    victim = get_job(kube_api, namespace, "scavenger")
    assert phase(victim) == "Pending" and victim["status"]["preemptions"] == 1
    assert scheduled_condition(victim)["reason"] in ("Preempted", "Unschedulable")
    reasons = {(e.involved_object.name, e.reason) for e in client.CoreV1Api(kube_api).list_namespaced_event(namespace).items}
    assert {("scavenger", "Preempted"), ("deadline", "Preempting")} <= reasons
    assert list(pods_by_job(kube_api, namespace)) == ["deadline"]


def test_finished_pod_completes_the_job_and_frees_the_lane(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    operator(pool(1, 1))
    quick = {"pod-complete.stage.kwok.x-k8s.io/delay": "1s"}
    create_job(kube_api, namespace, job_manifest("short", "8Gi", "8Gi", pod_annotations=quick))
    wait_for("short placed", lambda: phase(get_job(kube_api, namespace, "short")) in (*PLACED, "Succeeded"))
    create_job(kube_api, namespace, job_manifest("next", "8Gi", "8Gi"))
    done = wait_for("short succeeded", lambda: (j if phase(j := get_job(kube_api, namespace, "short")) == "Succeeded" else None))
    assert done["status"]["completionTime"]
    wait_for("next placed after the lane was freed", lambda: phase(get_job(kube_api, namespace, "next")) in PLACED)


def test_a_lost_node_requeues_its_jobs_onto_another(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    operator(pool(2, 1))
    create_job(kube_api, namespace, job_manifest("mover", "8Gi", "8Gi"))
    first = wait_for("placed", lambda: (j if phase(j := get_job(kube_api, namespace, "mover")) in PLACED else None))
    lost = first["status"]["placement"]["node"]
    client.CoreV1Api(kube_api).delete_node(lost)
    moved = wait_for("placed elsewhere", lambda: (
        j if phase(j := get_job(kube_api, namespace, "mover")) in PLACED and j["status"]["placement"]["node"] != lost else None
    ))  # fmt: skip
    assert moved["status"]["placement"]["node"] != lost
    reasons = {e.reason for e in client.CoreV1Api(kube_api).list_namespaced_event(namespace).items}
    assert "NodeLost" in reasons


def _gpunode(api: client.ApiClient, node: str, healthy: tuple[bool, ...]) -> None:
    custom = client.CustomObjectsApi(api)
    status = {
        "memoryUnitMiB": 512,
        "gpus": [
            {"index": i, "uuid": f"GPU-{node}-real-{i}", "model": "A10", "memoryMiB": 24576,
             "health": "Healthy" if ok else "Unhealthy"}
            for i, ok in enumerate(healthy)
        ],
    }  # fmt: skip
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, GPUNODES, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUNode", "metadata": {"name": node}})  # fmt: skip
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    custom.patch_cluster_custom_object_status(GROUP, VERSION, GPUNODES, node, {"status": status})


def test_gpunode_inventory_wins_and_an_unhealthy_gpu_moves_its_job(
    crds: list[str], kubeconfig: Path, kube_api: client.ApiClient, namespace: str,
    fake_gpu_nodes: Callable[..., list[str]], operator: Callable[..., OperatorProcess],
) -> None:  # fmt: skip
    (node,) = fake_gpu_nodes(1, gpus_per_node=2, gpu_memory_mib=16384)
    name = new_pool(kube_api, [node])
    _gpunode(kube_api, node, (True, True))
    try:
        operator(name)
        create_job(kube_api, namespace, job_manifest("big", "10Gi", "10Gi"))  # 20Gi: only fits the GPUNode's 24Gi GPUs
        placed = wait_for("placed", lambda: (j if phase(j := get_job(kube_api, namespace, "big")) in PLACED else None))
        first = placed["status"]["placement"]
        assert first["gpuUUID"].startswith(f"GPU-{node}-real-") and first["chargeUnits"] == 40  # 20Gi / 512Mi
        healthy = tuple(i != first["gpuIndex"] for i in range(2))
        _gpunode(kube_api, node, healthy)
        moved = wait_for("moved to the healthy GPU", lambda: (
            j if phase(j := get_job(kube_api, namespace, "big")) in PLACED and j["status"]["placement"]["gpuIndex"] != first["gpuIndex"] else None
        ))  # fmt: skip
        assert moved["status"]["placement"]["gpuUUID"] != first["gpuUUID"]
        reasons = {e.reason for e in client.CoreV1Api(kube_api).list_namespaced_event(namespace).items}
        assert "GPULost" in reasons
    finally:
        client.CustomObjectsApi(kube_api).delete_cluster_custom_object(GROUP, VERSION, GPUNODES, node)


def test_a_two_gpu_job_gets_two_whole_gpus(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str
) -> None:
    operator(pool(1, 2))
    manifest = job_manifest("wide", "4Gi", "8Gi")
    manifest["spec"]["gpus"] = 2
    create_job(kube_api, namespace, manifest)
    job = wait_for("placed", lambda: (j if phase(j := get_job(kube_api, namespace, "wide")) in PLACED else None))
    create_job(kube_api, namespace, job_manifest("small", "1Gi", "1Gi"))
    placement = job["status"]["placement"]
    assert placement["gpuIndices"] == [0, 1] and placement["chargeUnits"] == 128  # 2 x 16Gi / 256Mi
    pod = pods_by_job(kube_api, namespace)["wide"][0]
    assert pod.metadata.annotations["gpulane.dev/gpu-index"] == "0,1"
    small = wait_for("small unschedulable", lambda: (
        j if scheduled_condition(j := get_job(kube_api, namespace, "small")).get("reason") == "Unschedulable" else None
    ))  # fmt: skip
    assert phase(small) == "Pending"  # both GPUs are held whole


def test_metrics_endpoint_reports_placements_and_lane_memory(
    pool: Callable[..., str], kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = pool(1, 1)
    proc = OperatorProcess(namespace, name, tmp_path / "metrics.log", "--standalone")
    proc.argv[proc.argv.index("--metrics-port") + 1] = str(port)
    with proc:
        create_job(kube_api, namespace, job_manifest("measured", "1Gi", "3Gi"))
        wait_for("placed", lambda: phase(get_job(kube_api, namespace, "measured")) in PLACED)

        def scrape() -> str | None:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return text if 'gpulane_placements_total{result="bound"} 1.0' in text else None

        text = wait_for("metrics", scrape, timeout=30)
    lane = [line for line in text.splitlines() if line.startswith("gpulane_lane_memory_allocated_bytes{")]
    assert any(line.endswith(f" {4 * 1024**3:.1f}") or line.endswith(" 4.294967296e+09") for line in lane), lane
    assert "gpulane_placement_latency_seconds_count 1.0" in text


def test_fgd_placement_places_jobs_as_the_core_decides(
    pool: Callable[..., str], operator: Callable[..., OperatorProcess], kube_api: client.ApiClient, namespace: str,
    fake_gpu_nodes: Callable[..., list[str]],
) -> None:
    """`gpulane operator --placement fgd`: the FGD family through the one placement surface, end to end.

    Jobs arrive one at a time; each lands where gpulane_core's scheduling cycle with the fgd profile
    puts it on the same cluster (FGD's fragmentation gradient over the jobs already placed).
    """
    from gpulane_core.cluster import ClusterState
    from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
    from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle

    names = fake_gpu_nodes(2, gpus_per_node=2, gpu_memory_mib=16384)
    proc = operator(new_pool(kube_api, names), "--placement", "fgd")
    state = ClusterState.of([Node(NodeName(n), tuple(Gpu(i, f"{n}-{i}", "fake", 16384) for i in range(2))) for n in names])
    sizes = [("a", "6Gi", "2Gi"), ("b", "3Gi", "1Gi"), ("c", "10Gi", "2Gi"), ("d", "2Gi", "1Gi"), ("e", "7Gi", "1Gi")]
    with InvariantWatcher(kube_api, namespace, 16384) as watcher:
        for name, persistent, ephemeral in sizes:
            create_job(kube_api, namespace, job_manifest(name, persistent, ephemeral))
            job = wait_for(f"job {name} placed by fgd", lambda n=name: (  # type: ignore[misc]
                j if phase(j := get_job(kube_api, namespace, n)) in PLACED else None
            ), timeout=60)  # fmt: skip
            placed = job["status"]["placement"]
            core_job = Job(JobId(f"{namespace}/{name}"), int(persistent[:-2]) * 1024, int(ephemeral[:-2]) * 1024)
            result = schedule_cycle(state, [PendingJob(core_job, 0.0)], SchedulerConfig(placement="fgd"), 0.0)
            expected = result.placements[0]
            assert (placed["node"], placed["gpuIndex"]) == (expected.node, expected.first.index), proc.tail()
            state = result.state
    assert watcher.violations == [], watcher.violations
    assert proc.proc is not None and proc.proc.poll() is None, proc.tail()  # accepted --placement fgd, still running
