"""GPUShareJobs in real containers on a real kubelet: the chart's pods, Allocate, sharing, turns, enforcement.

Everything here goes through the real path: the operator and the agent run as the chart's pods, the
kubelet calls the agent's device plugin, containerd starts `gpulane-workload` from the project image, and
the workload takes lane turns from the agent's coordinator and reports its memory to the fake GPUs.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from gpulane_agent.deviceplugin.allocate import container_grant, parse_allocation
from gpulane_agent.enforcement.enforcer import REASON_EVICTED, REASON_OVER_LANE
from gpulane_agent.kube.api import PodView
from kubernetes import client
from opharness import InvariantWatcher, create_job
from realcluster import (
    SYSTEM_NAMESPACE,
    TURN_LINE,
    E2ECluster,
    job_pods,
    metric_values,
    pod_assignment,
    wait_for,
    wait_phases,
    workload_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(600)]

COORDINATOR_SOCKET = "/var/run/gpulane/coordinator.sock"  # the chart's nodeAgent.coordinatorSocketDir
FAKE_GPU_DIR = "/run/gpulane/fake-gpu/processes"  # the agent's backend.fake_process_dir default
AGENT_REASONS = (REASON_OVER_LANE, REASON_EVICTED)  # the agent's enforcement Events


def test_chart_runs_operator_and_agent_pods_and_the_plugin_registers(e2e_cluster: E2ECluster) -> None:
    deployment = e2e_cluster.apps.read_namespaced_deployment("gpulane-operator", SYSTEM_NAMESPACE)
    assert deployment.status.ready_replicas == 1
    daemonset = e2e_cluster.apps.read_namespaced_daemon_set("gpulane-node-agent", SYSTEM_NAMESPACE)
    assert daemonset.status.number_ready == len(e2e_cluster.nodes)
    for node in e2e_cluster.nodes:
        allocatable = e2e_cluster.core.read_node(node).status.allocatable
        # 2 GPUs x 16Gi in 256 MiB units, advertised by the agent's device plugin through the real kubelet
        assert allocatable["gpulane.dev/gpu-memory"] == str(2 * 16384 // 256)
        logs = e2e_cluster.kubectl("logs", "-n", SYSTEM_NAMESPACE, e2e_cluster.agent_pod(node).metadata.name)
        assert "registered gpulane.dev/gpu-memory with the kubelet" in logs
        out = e2e_cluster.kubectl("exec", "-n", SYSTEM_NAMESPACE, e2e_cluster.agent_pod(node).metadata.name,
                                  "--", "gpulane", "--help")  # fmt: skip
        assert "agent" in out and "operator" in out


def test_the_container_sees_exactly_what_allocate_returned(e2e_cluster: E2ECluster, ns: str) -> None:
    node = e2e_cluster.nodes[0]
    before = metric_values(e2e_cluster.agent_metrics(node), "gpulane_allocations_total")
    # The container prints its gpulane environment and the mounts it was given, then exits.
    script = ("env | grep -E '^(GPULANE|CUDA|NVIDIA)_' | sort; echo MOUNTS; "
              "awk '{print $5}' /proc/self/mountinfo | grep -E '^/(var/)?run/gpulane' | sort")  # fmt: skip
    create_job(e2e_cluster.api, ns, workload_job("env", "1Gi", "2Gi", [script], command=("sh", "-c")))
    wait_phases(e2e_cluster, ns, ["env"], "Succeeded", 120)
    pod = job_pods(e2e_cluster, ns)["env"]
    out = e2e_cluster.kubectl("logs", "-n", ns, pod.metadata.name)
    env_part, _, mount_part = out.partition("MOUNTS\n")
    seen_env = dict(line.split("=", 1) for line in env_part.splitlines() if "=" in line)
    view = PodView(ns, pod.metadata.name, pod.metadata.uid, node, annotations=pod.metadata.annotations,
                   labels=pod.metadata.labels)  # fmt: skip
    grant = container_grant(parse_allocation(view), COORDINATOR_SOCKET, FAKE_GPU_DIR)
    assert seen_env == dict(grant.envs)
    # The image's /var/run is a link to /run, so the kernel reports /var/run/gpulane as /run/gpulane.
    expected = {re.sub(r"^/var/run/", "/run/", m.container_path) for m in grant.mounts}
    assert sorted(mount_part.split()) == sorted(expected)
    after = metric_values(e2e_cluster.agent_metrics(node), "gpulane_allocations_total")
    ok = frozenset({("result", "ok"), ("Hostname", node)})
    assert after.get(ok, 0) - before.get(ok, 0) >= 1, "the kubelet did not call the agent's Allocate"


def test_eight_jobs_share_two_gpus_turn_by_turn_with_prefetch(e2e_cluster: E2ECluster, ns: str) -> None:
    """8 jobs of 1Gi + 6Gi on 2 x 16Gi: two lanes of two jobs per GPU, all at once, all Succeeded."""
    node = e2e_cluster.nodes[0]
    iterations = 6
    names = [f"share-{i}" for i in range(8)]
    with InvariantWatcher(e2e_cluster.api, ns, 16384) as watcher:
        for name in names:
            create_job(e2e_cluster.api, ns, workload_job(name, "1Gi", "6Gi",
                       ["--iterations", str(iterations), "--iteration-seconds", "0.4"]))  # fmt: skip
        wait_phases(e2e_cluster, ns, names, "Succeeded", 300)
    assert watcher.events > 0 and watcher.violations == []
    pods = job_pods(e2e_cluster, ns)
    lanes: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        assignment = pod_assignment(pods[name], ns)
        assert assignment.node == node
        log = e2e_cluster.kubectl("logs", "-n", ns, pods[name].metadata.name)
        turns = [m for m in TURN_LINE.finditer(log)]
        assert [int(m.group(2)) for m in turns] == list(range(1, iterations + 1)), log
        for m in turns:
            lanes.setdefault(m.group(4), []).append((int(m.group(5)), m.group(1)))
    # 8 x (1Gi + 6Gi) = 56Gi on 32Gi: only lanes shared by several jobs taking turns can hold them all.
    assert len({job for turns in lanes.values() for _, job in turns}) == 8
    shared = {lane: turns for lane, turns in lanes.items() if len({job for _, job in turns}) >= 2}
    assert shared, f"no lane was shared: {sorted(lanes)}"
    for lane, turns in shared.items():
        order = [job for _, job in sorted(turns)]
        changes = sum(1 for a, b in itertools.pairwise(order) if a != b)
        # Both jobs run all the time, so the lane alternates: far more changes than one hand-over.
        assert changes >= iterations, f"lane {lane} does not alternate: {order}"
    metrics = e2e_cluster.agent_metrics(node)
    turns_after = metric_values(metrics, "gpulane_lane_turns_total")
    for lane, turns in lanes.items():
        key = frozenset({("lane", lane), ("Hostname", node)})
        # A lane id is a slot that later lanes reuse, and a closed lane's series is forgotten after the
        # coordinator's closed_lane_metrics_s: so a count taken before this test may be gone by now.
        # While this test's jobs held the lane it stayed open, so its count includes every turn they took.
        assert turns_after.get(key, 0) >= len(turns), f"lane {lane}: {turns_after.get(key)} turns counted, {len(turns)} taken"
    assert sum(len(turns) for turns in lanes.values()) == 8 * iterations
    prefetch = metric_values(metrics, "gpulane_prefetch_signals_total")
    for lane, turns in lanes.items():
        key = frozenset({("lane", lane), ("Hostname", node)})
        order = [job for _, job in sorted(turns)]
        changes = sum(1 for a, b in itertools.pairwise(order) if a != b)
        assert prefetch.get(key, 0) >= changes, f"lane {lane}: {prefetch.get(key)} prefetch signals, {changes} changes"


def test_over_use_is_reported_with_an_event_and_the_neighbour_is_untouched(e2e_cluster: E2ECluster, ns: str) -> None:
    create_job(e2e_cluster.api, ns, workload_job("calm", "1Gi", "2Gi", ["--iterations", "40", "--iteration-seconds", "0.5"]))
    create_job(e2e_cluster.api, ns, workload_job("greedy", "1Gi", "2Gi",
               ["--iterations", "40", "--iteration-seconds", "0.5", "--over-use", "2048"]))  # fmt: skip
    wait_phases(e2e_cluster, ns, ["calm", "greedy"], "Running", 120)
    greedy = job_pods(e2e_cluster, ns)["greedy"]

    def violation_event() -> list[Any]:
        return [e for e in e2e_cluster.events_for(ns, greedy.metadata.name) if e.reason in AGENT_REASONS]

    events = wait_for("a lane-violation Event on the greedy pod", violation_event, timeout=90)
    assert greedy.metadata.name in events[0].message and "reporting only" in events[0].message
    calm = job_pods(e2e_cluster, ns)["calm"]
    assert calm.status.phase == "Running"
    assert not [e for e in e2e_cluster.events_for(ns, calm.metadata.name) if e.reason in AGENT_REASONS]
    # The chart's default policy is report: nobody is evicted, both finish.
    wait_phases(e2e_cluster, ns, ["calm", "greedy"], "Succeeded", 120)


def test_a_two_gpu_job_holds_its_lane_on_both_gpus(e2e_cluster: E2ECluster, ns: str) -> None:
    node = e2e_cluster.nodes[0]
    create_job(e2e_cluster.api, ns, workload_job("wide", "2Gi", "2Gi", ["--iterations", "30", "--iteration-seconds", "0.5"],
                                                 gpus=2))  # fmt: skip
    wait_phases(e2e_cluster, ns, ["wide"], "Running", 120)
    job_key = f"{ns}/wide"

    def lanes_on_both() -> list[Any] | None:
        gpus = (e2e_cluster.gpunode(node).get("status") or {}).get("gpus") or []
        holding = [g for g in gpus if any(job_key in (lane.get("jobs") or []) for lane in g.get("lanes") or [])]
        return holding if len(holding) == 2 else None

    holding = wait_for("the 2-GPU job's lane on both GPUs in GPUNode status", lanes_on_both, timeout=60)
    assert {g["uuid"] for g in holding} == set(client.ApiClient().sanitize_for_serialization(
        job_pods(e2e_cluster, ns)["wide"].metadata.annotations)["gpulane.dev/gpu-uuid"].split(","))  # fmt: skip
