"""The real-node cluster: bring-up time (cold and warm) and `kubectl apply` -> container running.

Runs `gpulane dev-cluster up --real-nodes 1 --no-agents` in process (gpulane_dev.devcluster) and installs the
chart with values-local.yaml (real helm, `--wait`), as docs/real-node.md tells users to.
- cold: the image cache (<cache>/images) is set aside first, so both images are built from Debian packages and
  the project's wheel (the Debian packages and Go-built binaries are already installed: `make binaries`);
- warm: the same command again with the images cached.
Latency: 20 GPUShareJobs in one manifest through `kubectl apply`, from the call to the first poll (every 0.1 s)
that shows the job's container running; the peer in the same run is 20 plain pods with the same image and
command, placed by kube-scheduler on the same node.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from gpulane_dev import devcluster
from gpulane_dev.binaries import Binaries, locate
from gpulane_dev.kubeclient import api_client
from gpulane_dev.settings import load_settings
from kubernetes import client

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/gpulane:dev"
JOBS = 20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _up(state_dir: Path, tools: Binaries) -> tuple[float, devcluster.ClusterState]:
    started = time.monotonic()
    options = devcluster.UpOptions(state_dir=state_dir, nodes=0, real_nodes=1, agents=False, repo=ROOT,
                                   crds_dir=ROOT / "crds")  # fmt: skip
    state = devcluster.up(options, tools, out=sys.stderr)
    return time.monotonic() - started, state


def _helm_install(tools: Binaries, kubeconfig: str) -> float:
    started = time.monotonic()
    chart = ROOT / "charts" / "gpulane"
    subprocess.run([str(tools.helm), "--kubeconfig", kubeconfig, "upgrade", "--install", "gpulane", str(chart), "-n",
                    "gpulane-system", "--create-namespace", "-f", str(chart / "values-local.yaml"), "--wait",
                    "--timeout", "300s"], check=True, capture_output=True, text=True, timeout=400)  # fmt: skip
    return time.monotonic() - started


def _wait_plugin(core: client.CoreV1Api, node: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        allocatable = core.read_node(node).status.allocatable or {}
        if int(allocatable.get("gpulane.dev/gpu-memory", "0")) > 0:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the agent's device plugin did not register on {node} in {timeout}s")


def _manifests(kind: str, namespace: str, node_selector: dict[str, str]) -> list[dict[str, Any]]:
    container = {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", "sleep 600"]}
    if kind == "gpulane":
        return [{"apiVersion": "gpulane.dev/v1alpha1", "kind": "GPUShareJob",
                 "metadata": {"name": f"job-{i:02d}", "namespace": namespace},
                 "spec": {"memory": {"persistent": "256Mi", "ephemeral": "512Mi"},
                          "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}
                for i in range(JOBS)]  # fmt: skip
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"plain-{i:02d}", "namespace": namespace,
                                                             "labels": {"bench": "plain"}},
             "spec": {"restartPolicy": "Never", "nodeSelector": node_selector, "containers": [container]}}
            for i in range(JOBS)]  # fmt: skip


def _apply_to_running(tools: Binaries, kubeconfig: str, core: client.CoreV1Api, kind: str, node: str) -> list[float]:
    namespace = f"bench-{kind}"
    core.create_namespace({"metadata": {"name": namespace}})
    docs = _manifests(kind, namespace, {"kubernetes.io/hostname": node})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(docs, f)
    started = time.monotonic()
    subprocess.run([str(tools.kubectl), "--kubeconfig", kubeconfig, "apply", "-f", f.name], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    running: dict[str, float] = {}
    deadline = started + 300
    while len(running) < JOBS and time.monotonic() < deadline:
        for pod in core.list_namespaced_pod(namespace).items:
            statuses = pod.status.container_statuses or []
            if pod.metadata.name not in running and statuses and statuses[0].state.running is not None:
                running[pod.metadata.name] = time.monotonic() - started
        time.sleep(0.1)
    Path(f.name).unlink()
    if len(running) < JOBS:
        raise TimeoutError(f"{kind}: only {len(running)} of {JOBS} containers running after 300s")
    core.delete_namespace(namespace, grace_period_seconds=0)
    return list(running.values())


def run(quick: bool) -> str:
    tools = locate()
    cache = load_settings().cache
    images = cache.root / "images"
    aside = cache.root / "images.bench-aside"
    shutil.rmtree(aside, ignore_errors=True)
    if images.exists():
        images.rename(aside)
    rows: list[tuple[str, float, float]] = []
    latencies: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-realnode-") as tmp:
        state_dir = Path(tmp) / "cluster"
        try:
            cold_s, state = _up(state_dir, tools)
        except BaseException:
            if aside.exists() and not images.exists():
                aside.rename(images)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        try:
            cold_chart = _helm_install(tools, state.kubeconfig)
        finally:
            devcluster.down(state_dir)
        rows.append(("cold (images built)", cold_s, cold_chart))
        warm_s, state = _up(state_dir, tools)
        try:
            warm_chart = _helm_install(tools, state.kubeconfig)
            rows.append(("warm (images cached)", warm_s, warm_chart))
            api = api_client(Path(state.kubeconfig))
            core = client.CoreV1Api(api)
            node = state.real_nodes[0].name
            _wait_plugin(core, node)
            for kind in ("gpulane", "kube-scheduler"):
                latencies[kind] = _apply_to_running(tools, state.kubeconfig, core, kind, node)
        finally:
            devcluster.down(state_dir)
    lines = [
        "## Real-node cluster: bring-up and kubectl apply -> container running",
        "",
        "`gpulane dev-cluster up --real-nodes 1 --no-agents` (etcd, kube-apiserver, kube-controller-manager,",
        "kube-scheduler, one node: containerd + kubelet, images imported), then `helm upgrade --install` of the",
        "chart with values-local.yaml `--wait` (operator Deployment and agent DaemonSet running). Cold sets the",
        "image cache aside, so both images are built (mmdebstrap from Debian packages + the project wheel);",
        "Debian packages and Go-built binaries were already installed (their cold cost: docs/real-node.md).",
        "",
        "| bring-up | dev-cluster up (s) | chart installed and running (s) | total (s) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {up_s:.1f} | {chart_s:.1f} | {up_s + chart_s:.1f} |" for name, up_s, chart_s in rows]
    lines += [
        "",
        f"{JOBS} objects in one manifest, one `kubectl apply`, same image and command (`sleep`), same node;",
        "latency from the apply call to the first 0.1 s poll showing the container running.",
        "",
        "| what | scheduler | p50 (s) | p99 (s) | max (s) | mean (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, values in latencies.items():
        what = "GPUShareJob (lane, device-plugin Allocate)" if kind == "gpulane" else "plain Pod (no GPU)"
        lines.append(f"| {what} | {kind} | {_pct(values, 0.5):.2f} | {_pct(values, 0.99):.2f} | {max(values):.2f} | "
                     f"{statistics.fmean(values):.2f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
