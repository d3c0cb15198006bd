"""Faults on the real node: the kubelet restarts, the agent pod is deleted, the operator pod is killed.

Each drill acts on the real component (the kubelet process through `gpulane dev-cluster kubelet`, the chart's
pods through the API) and leaves the session cluster healthy for the tests after it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from opharness import InvariantWatcher, create_job
from realcluster import (
    SYSTEM_NAMESPACE,
    TURN_LINE,
    E2ECluster,
    job_pods,
    operator_logs,
    wait_agents_ready,
    wait_for,
    wait_phases,
    workload_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(600)]

REGISTERED = "registered gpulane.dev/gpu-memory with the kubelet"
REJOINED = re.compile(r"gpulane: rejoined lane (\S+)")


def container_identity(pod: Any) -> tuple[str, str, int]:
    status = pod.status.container_statuses[0]
    return pod.metadata.uid, status.container_id, status.restart_count


def turns_taken(cluster: E2ECluster, namespace: str, pod: str) -> list[re.Match[str]]:
    return list(TURN_LINE.finditer(cluster.kubectl("logs", "-n", namespace, pod)))


def registrations_now(cluster: E2ECluster, node: str) -> int:
    """How often the agent says it registered; -1 while its log cannot be read (it is served by the kubelet)."""
    try:
        return cluster.agent_log(node).count(REGISTERED)
    except AssertionError:
        return -1


def test_kubelet_restart_re_registers_the_plugin_and_leaves_running_pods_alone(e2e_cluster: E2ECluster, ns: str) -> None:
    node = e2e_cluster.nodes[0]
    create_job(e2e_cluster.api, ns, workload_job("steady", "1Gi", "2Gi", ["--iterations", "80", "--iteration-seconds", "0.5"]))
    wait_phases(e2e_cluster, ns, ["steady"], "Running", 120)
    pod = job_pods(e2e_cluster, ns)["steady"]
    wait_for("the steady job's first lane turn", lambda: turns_taken(e2e_cluster, ns, pod.metadata.name), timeout=60)
    before = container_identity(pod)
    registrations = e2e_cluster.agent_log(node).count(REGISTERED)

    e2e_cluster.kubelet("restart", node)
    restarted = time.monotonic()
    wait_for("the device plugin to register again with the restarted kubelet",
             lambda: registrations_now(e2e_cluster, node) > registrations, timeout=30)  # fmt: skip
    took = time.monotonic() - restarted
    assert took <= 30, f"re-registration took {took:.1f}s"
    wait_for(f"{node} Ready after the kubelet restart", lambda: e2e_cluster.node_ready(node), timeout=60)

    # The running pod is the same pod, the same container, never restarted, and keeps taking turns.
    pod = job_pods(e2e_cluster, ns)["steady"]
    assert container_identity(pod) == before
    assert pod.status.phase == "Running"
    # A new job is allocated through the re-registered plugin.
    create_job(e2e_cluster.api, ns, workload_job("after", "1Gi", "1Gi", ["--iterations", "3", "--iteration-seconds", "0.2"]))
    wait_phases(e2e_cluster, ns, ["after", "steady"], "Succeeded", 150)
    assert [int(m.group(2)) for m in turns_taken(e2e_cluster, ns, pod.metadata.name)] == list(range(1, 81))


def lane_members(cluster: E2ECluster, node: str, jobs: set[str]) -> dict[str, list[tuple[str, str, int]]]:
    """Job -> [(GPU uuid, lane id, lane size)] for every lane that lists it in GPUNode status."""
    out: dict[str, list[tuple[str, str, int]]] = {job: [] for job in jobs}
    for gpu in (cluster.gpunode(node).get("status") or {}).get("gpus") or []:
        for lane in gpu.get("lanes") or []:
            for job in lane.get("jobs") or []:
                if job in out:
                    out[job].append((gpu["uuid"], lane["id"], lane["sizeMiB"]))
    return out


def test_deleted_agent_pod_comes_back_and_rebuilds_lanes_without_double_charging(e2e_cluster: E2ECluster, ns: str) -> None:
    node = e2e_cluster.nodes[0]
    names = ["held-a", "held-b"]
    for name in names:
        create_job(e2e_cluster.api, ns, workload_job(name, "1Gi", "6Gi", ["--iterations", "90", "--iteration-seconds", "0.4"]))
    wait_phases(e2e_cluster, ns, names, "Running", 120)
    keys = {f"{ns}/{name}" for name in names}

    def all_listed_once() -> dict[str, list[tuple[str, str, int]]] | None:
        members = lane_members(e2e_cluster, node, keys)
        return members if all(len(v) == 1 for v in members.values()) else None

    before = wait_for("both jobs' lanes in GPUNode status", all_listed_once, timeout=60)
    old_agent = e2e_cluster.agent_pod(node)
    heartbeat = (e2e_cluster.gpunode(node).get("status") or {}).get("heartbeatTime")
    e2e_cluster.core.delete_namespaced_pod(old_agent.metadata.name, SYSTEM_NAMESPACE)

    def new_agent() -> Any:
        pods = [p for p in e2e_cluster.system_pods("node-agent") if p.spec.node_name == node
                and p.metadata.uid != old_agent.metadata.uid and p.metadata.deletion_timestamp is None]  # fmt: skip
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        return ready[0] if ready else None

    wait_for("the DaemonSet's new agent pod Ready", new_agent, timeout=120)
    wait_agents_ready(e2e_cluster, timeout=120)
    # The new agent rebuilt the lanes from the kubelet's PodResources: every job in exactly the lane it had.
    wait_for("a GPUNode status written by the new agent",
             lambda: (e2e_cluster.gpunode(node).get("status") or {}).get("heartbeatTime") != heartbeat, timeout=60)  # fmt: skip
    after = wait_for("both jobs' lanes rebuilt in GPUNode status", all_listed_once, timeout=60)
    assert after == before
    # No pod is charged twice: a third job still gets a lane, and all three finish.
    create_job(e2e_cluster.api, ns, workload_job("held-c", "1Gi", "2Gi", ["--iterations", "3", "--iteration-seconds", "0.2"]))
    wait_phases(e2e_cluster, ns, [*names, "held-c"], "Succeeded", 240)
    for name in names:
        pod = job_pods(e2e_cluster, ns)[name].metadata.name
        log = e2e_cluster.kubectl("logs", "-n", ns, pod)
        # The workload rejoined its lane at the new coordinator and took numbered turns there again.
        assert REJOINED.search(log), log[-3000:]
        turns = turns_taken(e2e_cluster, ns, pod)
        assert [int(m.group(2)) for m in turns] == list(range(1, 91))
        rejoined_at = next(i for i, line in enumerate(log.splitlines()) if REJOINED.search(line))
        later = [m for m in TURN_LINE.finditer("\n".join(log.splitlines()[rejoined_at:]))]
        assert later and all(int(m.group(5)) > 0 for m in later), "turns after the rejoin were not granted by the lane"


def test_operator_pod_killed_while_placing_twenty_jobs(e2e_cluster: E2ECluster, ns: str) -> None:
    names = [f"burst-{i:02d}" for i in range(20)]
    operator = e2e_cluster.system_pods("operator")
    assert len(operator) == 1
    with InvariantWatcher(e2e_cluster.api, ns, e2e_cluster.gpu_memory_mib) as watcher:
        for i, name in enumerate(names):
            create_job(e2e_cluster.api, ns, workload_job(name, "512Mi", "1Gi",
                       ["--iterations", "2", "--iteration-seconds", "0.2"]))  # fmt: skip
            if i == 5:  # mid-placement: some jobs placed, some pods in flight, most still queued
                e2e_cluster.core.delete_namespaced_pod(operator[0].metadata.name, SYSTEM_NAMESPACE, grace_period_seconds=0)
        wait_phases(e2e_cluster, ns, names, "Succeeded", 300)
    replacement = [p for p in e2e_cluster.system_pods("operator") if p.metadata.uid != operator[0].metadata.uid]
    assert replacement, "the Deployment did not replace the killed operator pod"
    assert watcher.events > 0 and watcher.violations == []
    assert sorted(watcher.uids_by_job) == names
    twice = {job: uids for job, uids in watcher.uids_by_job.items() if len(uids) != 1}
    events = e2e_cluster.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False)
    assert not twice, f"jobs with more than one pod: {twice}\n{operator_logs(e2e_cluster, 400)}\nevents:\n{events}"
