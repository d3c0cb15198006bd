"""The e2e tier's cluster: real kubelets on containerd here, or a kind cluster where Docker runs.

`E2ECluster` is what every e2e test talks to, whichever backend made it:
- realnode (default): `gpulane dev-cluster up --real-nodes N --no-agents` through gpulane_dev, then the
  chart installed with charts/gpulane/values-local.yaml by the real helm, `--wait`;
- kind (GPULANE_E2E_CLUSTER=kind): the cluster in $KUBECONFIG, where hack/kind-e2e.sh installed the
  chart with values-kind.yaml.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gpulane_core import podcontract
from gpulane_dev import devcluster
from gpulane_dev.binaries import Binaries, BinariesMissing, locate
from gpulane_dev.kubeclient import api_client
from kubernetes import client
from opharness import get_job, wait_for  # one poll-until helper for the integration and e2e tiers

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpulane"
LOCAL_VALUES = CHART / "values-local.yaml"
RELEASE = "gpulane"
SYSTEM_NAMESPACE = "gpulane-system"
IMAGE = "localhost/gpulane:dev"
TURN_LINE = re.compile(r"gpulane-workload: job=(\S+) iteration=(\d+)/(\d+) lane=(\S+) turn=(\d+)")


@dataclass
class E2ECluster:
    kubeconfig: Path
    binaries: Binaries
    nodes: tuple[str, ...]
    backend: str
    image: str = IMAGE
    gpus_per_node: int = 2
    gpu_memory_mib: int = 16384
    state_dir: Path | None = None  # the dev cluster's state (realnode backend): kubelet stop/start drills
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = api_client(self.kubeconfig)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        argv = [str(self.binaries.kubectl), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def helm(self, *args: str, timeout: float = 300) -> str:
        argv = [str(self.binaries.helm), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def system_pods(self, component: str) -> list[Any]:
        selector = f"app.kubernetes.io/component={component}"
        return list(self.core.list_namespaced_pod(SYSTEM_NAMESPACE, label_selector=selector).items)

    def agent_pod(self, node: str) -> Any:
        pods = [p for p in self.system_pods("node-agent") if p.spec.node_name == node and p.metadata.deletion_timestamp is None]
        assert len(pods) == 1, f"expected one agent pod on {node}, found {[p.metadata.name for p in pods]}"
        return pods[0]

    def agent_metrics(self, node: str) -> str:
        """The agent's /metrics on `node`, fetched at its pod address (inside the node's namespace)."""
        pod = self.agent_pod(node)
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:9400/metrics", timeout=10) as response:
            return str(response.read().decode())

    def gpunode(self, node: str) -> dict[str, Any]:
        obj: dict[str, Any] = client.CustomObjectsApi(self.api).get_cluster_custom_object(
            "gpulane.dev", "v1alpha1", "gpunodes", node)
        return obj

    def events_for(self, namespace: str, name: str) -> list[Any]:
        events = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return list(events)

    def agent_log(self, node: str) -> str:
        return self.kubectl("logs", "-n", SYSTEM_NAMESPACE, self.agent_pod(node).metadata.name)

    def kubelet(self, action: str, node: str) -> None:
        """Stop, start or restart a real node's kubelet (gpulane dev-cluster kubelet ...)."""
        assert self.state_dir is not None, "kubelet drills need the realnode backend"
        devcluster.kubelet(self.state_dir, node, action)

    def node_ready(self, node: str) -> bool:
        conditions = self.core.read_node(node).status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


def metric_values(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Samples of one family in Prometheus text format: label set -> value."""
    out: dict[frozenset[tuple[str, str]], float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        labels: list[tuple[str, str]] = []
        if "{" in head:
            body = head[head.index("{") + 1 : head.rindex("}")]
            for part in body.split('",'):
                if "=" in part:
                    key, _, val = part.partition("=")
                    labels.append((key.strip(), val.strip().strip('"')))
        out[frozenset(labels)] = float(value)
    return out


def workload_job(name: str, persistent: str, ephemeral: str, args: Sequence[str], *, gpus: int = 1,
                 image: str = IMAGE, command: Sequence[str] = ("gpulane-workload",)) -> dict[str, Any]:  # fmt: skip
    """A GPUShareJob running the sample workload from the project image."""
    spec: dict[str, Any] = {
        "memory": {"persistent": persistent, "ephemeral": ephemeral},
        "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "train", "image": image, "imagePullPolicy": "Never",
                            "command": [*command, *args]}],
        }},
    }  # fmt: skip
    if gpus > 1:
        spec["gpus"] = gpus
    return {"apiVersion": "gpulane.dev/v1alpha1", "kind": "GPUShareJob", "metadata": {"name": name}, "spec": spec}


def install_chart(cluster: E2ECluster, extra: Sequence[str] = (), *, wait_device_plugin: bool = True) -> float:
    """helm install (or upgrade) the chart with values-local.yaml, --wait; returns the seconds it took.

    `wait_device_plugin=False` (DRA mode, where the agent serves no device plugin): wait only for the agents."""
    started = time.monotonic()
    cluster.helm("upgrade", "--install", RELEASE, str(CHART), "-n", SYSTEM_NAMESPACE, "--create-namespace",
                 "-f", str(LOCAL_VALUES), "--wait", "--timeout", "240s", *extra)  # fmt: skip
    # helm's --wait can look at the DaemonSet before its controller counted the nodes (desired 0).
    wait_agents_ready(cluster, timeout=240, device_plugin=wait_device_plugin)
    return time.monotonic() - started


def wait_agents_ready(cluster: E2ECluster, timeout: float, *, device_plugin: bool = True) -> None:
    """One Ready, current agent pod per node, and (device_plugin) each node advertising gpulane.dev/gpu-memory."""

    def ready() -> bool:
        ds = cluster.apps.read_namespaced_daemon_set("gpulane-node-agent", SYSTEM_NAMESPACE).status
        if ds.number_ready != len(cluster.nodes) or ds.desired_number_scheduled != len(cluster.nodes):
            return False
        # After an upgrade the old pods may still count as ready: wait for the new template everywhere.
        if (ds.updated_number_scheduled or 0) != len(cluster.nodes) or ds.observed_generation != ds_generation():
            return False
        if not device_plugin:
            return True
        return all(int((cluster.core.read_node(n).status.allocatable or {}).get("gpulane.dev/gpu-memory", "0")) > 0
                   for n in cluster.nodes)  # fmt: skip

    def ds_generation() -> int:
        return int(cluster.apps.read_namespaced_daemon_set("gpulane-node-agent", SYSTEM_NAMESPACE).metadata.generation)

    what = "an agent pod Ready on every node" + (" and its device plugin registered" if device_plugin else "")
    wait_for(what, ready, timeout=timeout)


def dump(obj: Any) -> str:
    return json.dumps(client.ApiClient().sanitize_for_serialization(obj), indent=1)[:4000]


def backend() -> str:
    return os.environ.get("GPULANE_E2E_CLUSTER", "realnode")


def job_pods(cluster: E2ECluster, namespace: str) -> dict[str, Any]:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/managed-by=gpulane").items
    return {p.metadata.labels["gpulane.dev/job"]: p for p in pods}


def wait_phases(cluster: E2ECluster, namespace: str, names: list[str], phase: str, timeout: float) -> None:
    """Wait until every job is in `phase`; a timeout names each laggard, its pod and the operator's last words."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = {n: get_job(cluster.api, namespace, n).get("status") or {} for n in names}
        behind = {n: s for n, s in statuses.items() if s.get("phase") != phase}
        if not behind:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    pods = job_pods(cluster, namespace)
    lines = []
    for name, status in sorted(behind.items()):
        conditions = sorted(status.get("conditions") or [], key=lambda c: str(c.get("lastTransitionTime")))
        last = conditions[-1] if conditions else {}
        pod = pods.get(name)
        pod_part = "no pod" if pod is None else (
            f"pod {pod.metadata.name} {pod.status.phase} on {pod.spec.node_name or '-'}"
            f"{' (deleting)' if pod.metadata.deletion_timestamp else ''}")  # fmt: skip
        lines.append(f"  {name}: phase={status.get('phase')!r} {last.get('type')}={last.get('status')} "
                     f"{last.get('reason')}: {last.get('message')}; {pod_part}")  # fmt: skip
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {len(behind)} of {len(names)} jobs to reach "
                         f"{phase}:\n" + "\n".join(lines) + f"\noperator log tail:\n{operator_logs(cluster, 60)}")  # fmt: skip


def operator_logs(cluster: E2ECluster, tail: int) -> str:
    """The last lines of every operator pod's log (for failure messages)."""
    out = ""
    for pod in cluster.system_pods("operator"):
        text = cluster.kubectl("logs", "-n", SYSTEM_NAMESPACE, pod.metadata.name, "--tail", str(tail), check=False)
        out += f"--- {pod.metadata.name} ---\n{text}"
    return out


@contextlib.contextmanager
def real_cluster(state_dir: Path, real_nodes: int) -> Iterator[E2ECluster]:
    """`gpulane dev-cluster up --real-nodes N --no-agents` with the chart installed; torn down on exit.

    A missing piece of the node fails the test loudly (the tier never skips on CI machines).
    """
    try:
        tools = locate()
    except BinariesMissing as exc:
        pytest.fail(f"the real-node cluster cannot be obtained: {exc}", pytrace=False)
    options = devcluster.UpOptions(state_dir=state_dir, nodes=0, real_nodes=real_nodes, real_gpus_per_node=2,
                                   gpu_memory_mib=16384, agents=False, repo=ROOT, crds_dir=ROOT / "crds")  # fmt: skip
    try:
        state = devcluster.up(options, tools)
    except Exception as exc:  # a missing piece of the node: fail loudly, never skip
        pytest.fail(f"gpulane dev-cluster up --real-nodes {real_nodes} failed: {type(exc).__name__}: {exc}",
                    pytrace=False)  # fmt: skip
    cluster = E2ECluster(Path(state.kubeconfig), tools, tuple(n.name for n in state.real_nodes), "realnode",
                         state_dir=state_dir)  # fmt: skip
    try:
        install_chart(cluster)
        yield cluster
    finally:
        cluster.close()
        devcluster.down(state_dir)


def pod_assignment(pod: Any, namespace: str) -> podcontract.Assignment:
    """The assignment the operator wrote on a job's pod."""
    job = podcontract.pod_job(namespace, pod.metadata.name, pod.metadata.labels)
    return podcontract.from_annotations(job, pod.metadata.annotations)
