"""Operator throughput and latency on a real kube-apiserver: GPUShareJob created -> pod bound.

Starts its own etcd + kube-apiserver + kwok (gpulane_dev.controlplane), installs crds/, creates fake
GPU nodes (gpulane_dev.fakenodes), runs `gpulane operator --standalone` as a subprocess, creates the
jobs from a thread pool and watches pods: a job's latency is from the create call's response to the
watch event that shows its pod bound (spec.nodeName set). Jobs are sized to share GPUs. In the same run
and on the same nodes, kube-scheduler (default settings) then binds as many plain pods, measured alike.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from gpulane_agent.dra import slices
from gpulane_agent.gpu.backend import GpuInfo
from gpulane_dev import apirequests, binaries, crds, fakenodes, procs, realnodes
from gpulane_dev.bindwatch import BindWatch
from gpulane_dev.controlplane import ControlPlane, ControlPlaneOptions
from gpulane_dev.kubeclient import api_client
from gpulane_operator.cycle import FIRST_CYCLE
from kubernetes import client

ROOT = Path(__file__).resolve().parents[1]
POOL = "gpulane.dev/bench-pool"
SETTLE_S = 3.0  # requests are counted until this long after the last bind (status writes that trail it)


def _job(name: str, allocation: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "memory": {"persistent": "1Gi", "ephemeral": "6Gi"},
        "template": {"spec": {"containers": [{"name": "train", "image": "python:3.11-slim"}]}},
    }
    if allocation:
        spec["allocation"] = allocation
    return {"apiVersion": "gpulane.dev/v1alpha1", "kind": "GPUShareJob", "metadata": {"name": name}, "spec": spec}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    plane: ControlPlane, jobs: int, nodes: int, gpus: int, workdir: Path, allocation: str = "", backlog: bool = False
) -> tuple[dict[str, float], dict[apirequests.RequestKey, float]]:
    """A stream (the operator running, jobs created meanwhile) or, with ``backlog``, a drain: every job
    created first, then the operator started; its rate is binds per second from the first bind to the last
    (scheduler_perf's throughput, free of the client's create rate), and its latencies are from the first
    bind, not from the creates."""
    api = api_client(plane.kubeconfig)
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    names = fakenodes.create(api, fakenodes.fleet(nodes, "bench", gpus=gpus, gpu_memory_mib=16384))
    fakenodes.wait_ready(api, names, timeout=120)
    for name in names:
        core.patch_node(name, {"metadata": {"labels": {POOL: "yes"}}})
        if allocation == "dra":  # kwok nodes run no agent: publish the slice it would (DRA jobs need one)
            _publish_slice(custom, name, core.read_node(name).metadata.uid, gpus)
    core.create_namespace({"metadata": {"name": "bench"}})
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
    argv = [sys.executable, "-m", "gpulane_core.cli", "operator", "--standalone", "--namespace", "bench",
            "--node-selector", f"{POOL}=yes", "--metrics-port", "0"]  # fmt: skip
    created: dict[str, float] = {}

    def job_of(pod: dict[str, Any]) -> str | None:
        return ((pod.get("metadata") or {}).get("labels") or {}).get("gpulane.dev/job")

    binds = BindWatch(core, "bench", jobs, job_of)
    bound = binds.bound
    def create(i: int) -> None:
        name = f"job-{i:04d}"
        custom.create_namespaced_custom_object("gpulane.dev", "v1alpha1", "bench", "gpusharejobs",
                                               _job(name, allocation))  # fmt: skip
        created[name] = time.monotonic()

    def create_all() -> float:
        return _create_all(create, jobs, created)

    offered = 0.0
    with (workdir / "operator.log").open("wb") as log:
        if backlog:
            binds.start()
            offered = create_all()
        operator = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            if not backlog:  # kopf startup and index population, not part of the measurement
                _wait_first_cycle(workdir / "operator.log", operator)
                binds.start()
                time.sleep(0.5)  # the watch is open before the first create
            before = apirequests.scrape(plane)  # after node setup (and, streaming, after operator startup)
            start = time.monotonic()
            if not backlog:
                offered = create_all()
            if not binds.done.wait(timeout=max(600.0, jobs / 5.0)):
                raise RuntimeError(f"only {len(bound)}/{jobs} pods bound; see {workdir / 'operator.log'}")
            end = max(bound.values())
            cpu_s = _cpu_seconds(operator.pid)
            peak_rss_mib = _peak_rss_mib(operator.pid)
            time.sleep(SETTLE_S)
            requests = apirequests.delta(before, apirequests.scrape(plane))
        finally:
            binds.stop()
            operator.terminate()
            operator.wait(timeout=30)
    result = _timings(created, bound, start, end, backlog)
    return {**result, "offered": offered, "cpu": cpu_s, "rss": peak_rss_mib,
            "twice": float(sum(1 for uids in binds.uids.values() if len(uids) > 1)),
            "restarts": float(binds.restarts)}, requests  # fmt: skip


def _create_all(create: Callable[[int], None], count: int, created: dict[str, float]) -> float:
    """Create ``count`` objects from 8 client threads; the rate the client offered (per second)."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(count)))
    return count / (max(created.values()) - began)


def _wait_first_cycle(log: Path, operator: subprocess.Popen[bytes]) -> None:
    """Until the operator logs its first cycle (its indexes complete). Jobs created before that would each
    join kopf's index wait, whose cost grows with the square of the objects waiting (docs/benchmarks.md)."""
    deadline = time.monotonic() + 900.0
    while FIRST_CYCLE not in log.read_text(errors="replace"):
        if operator.poll() is not None:
            raise RuntimeError(f"the operator exited ({operator.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the operator logged no {FIRST_CYCLE!r} in 900 s; see {log}")
        time.sleep(0.2)


def _timings(created: dict[str, float], bound: dict[str, float], start: float, end: float,
             backlog: bool) -> dict[str, float]:  # fmt: skip
    """Latency and rate of a stream (from each create; jobs over first create to last bind) or of a
    drain (from the first bind; binds over first bind to last bind)."""
    if backlog:
        first = min(bound.values())
        latencies = [t - first for t in bound.values()]
        rate = (len(bound) - 1) / max(end - first, 1e-9)
        wall = end - first
    else:
        latencies = [max(0.0, bound[j] - created[j]) for j in created]
        rate = len(created) / (end - start)
        wall = end - start
    return {"p50": statistics.median(latencies), "p99": _pct(latencies, 0.99), "max": max(latencies),
            "rate": rate, "wall": wall}  # fmt: skip


def _plain_pod(name: str) -> dict[str, Any]:
    """A default-scheduler pod asking for what a job would hold without lane sharing: 7Gi of GPU memory."""
    units = str((1024 + 6144) // fakenodes.DEFAULT_MEMORY_UNIT_MIB)
    resources = {"requests": {fakenodes.GPU_MEMORY_RESOURCE: units}, "limits": {fakenodes.GPU_MEMORY_RESOURCE: units}}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench-pod": name}},
        "spec": {"nodeSelector": {POOL: "yes"}, "restartPolicy": "Never",
                 "containers": [{"name": "train", "image": "python:3.11-slim", "resources": resources}]},
    }  # fmt: skip


def measure_kube_scheduler(plane: ControlPlane, jobs: int, workdir: Path, backlog: bool = False) -> dict[str, float]:
    """kube-scheduler (default settings, as the dev cluster runs it) binding plain pods on the same nodes.

    Run after `measure` (its operator stopped, its pods still bound) in its own namespace: the same
    8 client threads, the same created-response-to-bound-watch-event latency and rate. With ``backlog``,
    as `measure`'s drain: every pod created first, then the scheduler started.
    """
    api = api_client(plane.kubeconfig)
    core = client.CoreV1Api(api)
    namespace = "bench-kube-backlog" if backlog else "bench-kube"
    core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
    _lift_not_ready_taint(core)
    argv = realnodes.scheduler_argv(binaries.locate().kube_scheduler, plane)
    created: dict[str, float] = {}

    def pod_of(pod: dict[str, Any]) -> str | None:
        name = str(pod["metadata"]["name"])
        return None if name == "probe" else name

    binds = BindWatch(core, namespace, jobs, pod_of, label_selector="bench-pod")
    bound = binds.bound
    def create(i: int) -> None:
        name = f"pod-{i:04d}"
        core.create_namespaced_pod(namespace, cast(Any, _plain_pod(name)))
        created[name] = time.monotonic()

    def create_all() -> float:
        return _create_all(create, jobs, created)

    if backlog:
        binds.start()
        time.sleep(0.5)  # the watch is open before the first create
        offered = create_all()
    scheduler = procs.start(procs.ProcessSpec("kube-scheduler", argv, workdir / f"{namespace}.log"), die_with_parent=True)
    try:
        start = time.monotonic()
        if not backlog:
            # Not part of the measurement: the scheduler's startup and informer sync, shown by one bound probe pod.
            core.create_namespaced_pod(namespace, cast(Any, _plain_pod("probe")))
            procs.wait_until(lambda: _bound(core, namespace, "probe"),
                             what="kube-scheduler to bind a probe pod", timeout=120, watch=[scheduler])  # fmt: skip
            binds.start()
            time.sleep(0.5)  # the watch is open before the first create
            start = time.monotonic()
            offered = create_all()
        if not binds.done.wait(timeout=max(600.0, jobs / 5.0)):
            raise RuntimeError(f"only {len(bound)}/{jobs} pods bound; see {workdir / f'{namespace}.log'}")
        end = max(bound.values())
        cpu_s = _cpu_seconds(scheduler.pid)
        peak_rss_mib = _peak_rss_mib(scheduler.pid)
    finally:
        binds.stop()
        scheduler.stop()
    return {**_timings(created, bound, start, end, backlog), "offered": offered, "cpu": cpu_s, "rss": peak_rss_mib}


def _lift_not_ready_taint(core: client.CoreV1Api) -> None:
    """Do for the Ready kwok nodes what kube-controller-manager's node lifecycle controller would.

    The apiserver taints every new node node.kubernetes.io/not-ready:NoSchedule (TaintNodesByCondition)
    and that controller lifts it once the node is Ready; there is none here, and kube-scheduler honours it.
    """
    nodes: Any = core.list_node(label_selector=f"{POOL}=yes")
    for node in nodes.items:
        taints = [t.to_dict() for t in node.spec.taints or () if t.key != "node.kubernetes.io/not-ready"]
        core.patch_node(node.metadata.name, {"spec": {"taints": taints}})


def _bound(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    pod: Any = core.read_namespaced_pod(name, namespace)
    return bool(pod.spec.node_name)


def _version(binary: Path) -> str:
    """What the binary says it is (`Kubernetes v1.37.2`), so the report names the peer that ran."""
    return subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the operator process used so far (Linux /proc), startup included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def bench_plane(prefix: str) -> Iterator[tuple[ControlPlane, Path]]:
    """A fresh kube-apiserver + etcd + kwok with the CRDs installed, and a work directory for logs."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        options = ControlPlaneOptions.from_binaries(binaries.locate(), workdir / "cp", with_kwok=True)
        with ControlPlane.start(options) as plane:
            crds.install_directory(api_client(plane.kubeconfig), ROOT / "crds")
            yield plane, workdir


def run_dra(quick: bool) -> str:
    """The same burst with every job in DRA mode: what a ResourceClaim per pod costs in API requests."""
    jobs, nodes, gpus = (50, 10, 8) if quick else (500, 100, 8)
    with bench_plane("bench-operator-dra-") as (plane, workdir):
        r, requests = measure(plane, jobs, nodes, gpus, workdir, allocation="dra")
    # Only the operator touches ResourceClaims here (kwok nodes have no kubelet to read them).
    claim_requests = sum(n for k, n in requests.items() if k.resource == "resource.k8s.io/resourceclaims"
                         and k.verb not in ("LIST", "WATCH"))  # fmt: skip
    per_job = (apirequests.by_owner(requests).get(apirequests.OPERATOR, 0.0) + claim_requests) / jobs
    return "\n".join([
        "## Operator, DRA mode: GPUShareJob created to pod bound with its ResourceClaim allocated",
        "",
        f"As above, every job with `spec.allocation: dra`; {nodes} fake nodes x {gpus} GPUs x 16Gi. API requests/job:",
        "the operator's, including its ResourceClaim requests (listed as `other` below: no other client makes them).",
        "",
        "| jobs | nodes x GPUs | p50 latency (s) | p99 latency (s) | jobs bound/s | operator CPU (s) | API requests/job |",
        "|---|---|---|---|---|---|---|",
        f"| {jobs} | {nodes} x {gpus} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rate']:.1f} | {r['cpu']:.1f} | {per_job:.2f} |",
        *_request_table(requests, jobs),
    ])  # fmt: skip


def _publish_slice(custom: client.CustomObjectsApi, node: str, uid: str, gpus: int) -> None:
    """The node agent's ResourceSlice for a kwok node, its GPUs with the UUIDs the operator gives GPUs it
    knows from node labels (GPU-<node>-<index>)."""
    infos = [GpuInfo(i, f"GPU-{node}-{i}", "Fake-GPU-16G", 16384 << 20) for i in range(gpus)]
    body = slices.body(node, uid, slices.slice_spec(node, infos, {}, fakenodes.DEFAULT_MEMORY_UNIT_MIB), 1)
    custom.create_cluster_custom_object("resource.k8s.io", "v1", "resourceslices", body)


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM, Linux /proc) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def run(quick: bool) -> str:
    jobs, nodes, gpus = (50, 10, 8) if quick else (500, 100, 8)
    with bench_plane("bench-operator-") as (plane, workdir):
        r, requests = measure(plane, jobs, nodes, gpus, workdir)
        before = apirequests.scrape(plane)
        k = measure_kube_scheduler(plane, jobs, workdir)
        peer_requests = apirequests.delta(before, apirequests.scrape(plane))
    with bench_plane("bench-operator-drain-") as (plane, workdir):
        rd, drain_requests = measure(plane, jobs, nodes, gpus, workdir, backlog=True)
        before = apirequests.scrape(plane)
        kd = measure_kube_scheduler(plane, jobs, workdir, backlog=True)
        drain_peer = apirequests.delta(before, apirequests.scrape(plane))
    per_job = apirequests.by_owner(requests).get(apirequests.OPERATOR, 0.0) / jobs
    drain_per_job = apirequests.by_owner(drain_requests).get(apirequests.OPERATOR, 0.0) / jobs
    peer_per_pod = _scheduler_writes(peer_requests) / jobs
    drain_peer_per_pod = _scheduler_writes(drain_peer) / jobs
    shape = f"{jobs} | {nodes} x {gpus}"

    def row(name: str, arrivals: str, m: dict[str, float], per: float) -> str:
        return (f"| {name} | {arrivals} | {shape} | {m['p50']:.2f} | {m['p99']:.2f} | {m['max']:.2f} | {m['rate']:.1f} |"
                f" {m['wall']:.1f} | {m['cpu']:.1f} | {per:.2f} |")  # fmt: skip

    def ratio(arrivals: str, g: dict[str, float], q: dict[str, float]) -> str:
        return (f"| gpulane / kube-scheduler | {arrivals} | | | {g['p50'] / q['p50']:.2f}x | {g['p99'] / q['p99']:.2f}x |"
                f" | {g['rate'] / q['rate']:.2f}x | | | |")  # fmt: skip

    stream = f"stream ({r['offered']:.0f}/s offered)"
    peer_stream = f"stream ({k['offered']:.0f}/s offered)"
    return "\n".join(
        [
            "## Operator: GPUShareJob created to pod bound",
            "",
            f"{jobs} GPUShareJobs (1Gi persistent + 6Gi ephemeral each) against a real kube-apiserver + etcd + kwok,",
            f"{nodes} fake nodes x {gpus} GPUs x 16Gi; `gpulane operator --standalone` (fifo, gpulane placement) in",
            "its own process. Two arrival patterns, each in its own control plane:",
            "- **stream**: the scheduler is running (gpulane: after its first cycle, so kopf's indexes are complete)",
            "  and 8 client threads create the jobs; latency: create response to the pod-watch event showing the",
            "  pod bound; rate: jobs / (first create to last bind). The client's offered rate is in the row.",
            "- **drain**: every job is created first, then the scheduler is started (scheduler_perf's throughput,",
            "  free of the client's create rate); rate: binds / (first bind to last bind); latency: from the first",
            "  bind to each bind.",
            "Scheduler CPU: user + system seconds of its process (startup included). apiserver, etcd, kwok, client",
            f"and scheduler share one machine ({os.cpu_count()} cores; 1-minute load average {os.getloadavg()[0]:.1f} at",
            "the end). Peer, same control plane and kwok nodes, gpulane operator stopped: kube-scheduler",
            f"({_version(binaries.locate().kube_scheduler)}, default settings: client QPS 50, burst 100) binding {jobs}",
            f"plain pods that each request {(1024 + 6144) // fakenodes.DEFAULT_MEMORY_UNIT_MIB} x",
            f"{fakenodes.GPU_MEMORY_RESOURCE} (7Gi, a job's memory without lane sharing), measured alike.",
            "",
            "API requests/job: the operator's, as the table below attributes them; kube-scheduler's are its",
            "Bindings and Events (the pod creates are the bench client's; watches and leases excluded for both).",
            "",
            "| scheduler | arrivals | jobs | nodes x GPUs | p50 latency (s) | p99 latency (s) | max (s) | jobs bound/s | wall (s) | scheduler CPU (s) | API requests/job |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            row("gpulane", stream, r, per_job),
            row("kube-scheduler", peer_stream, k, peer_per_pod),
            ratio("stream", r, k),
            row("gpulane", "drain", rd, drain_per_job),
            row("kube-scheduler", "drain", kd, drain_peer_per_pod),
            ratio("drain", rd, kd),
            *_request_table(requests, jobs),
        ]
    )


def _scheduler_writes(requests: dict[apirequests.RequestKey, float]) -> float:
    """kube-scheduler's own writes in its run: Bindings and Events."""
    return sum(
        n for key, n in requests.items()
        if (key.resource == "pods" and key.subresource == "binding")
        or (key.resource in ("events", "events.k8s.io/events") and key.verb != "WATCH" and key.verb != "LIST")
    )  # fmt: skip


def _request_table(requests: dict[apirequests.RequestKey, float], jobs: int) -> list[str]:
    total = sum(requests.values())
    lines = [
        "",
        "### apiserver requests per job",
        "",
        f"From the apiserver's own `apiserver_request_total`, scraped after operator startup and {SETTLE_S:.0f} s after",
        "the last bind; divided by the number of jobs. The counter has no client label, so rows are attributed by",
        "who makes such requests here: the operator's column sums its writes and reads (pods, bindings, job",
        "status and kopf's patches, Events); the bench client's own job creates and kwok's pod-status and",
        "node/lease writes are listed but not counted for the operator; LIST/WATCH are every client's and a",
        "watch is counted only when it ends.",
        "",
        "| verb resource | attributed to | requests | per job |",
        "|---|---|---|---|",
    ]
    rows = sorted(requests.items(), key=lambda kv: (apirequests.attribute(kv[0]), -kv[1], kv[0]))
    lines += [f"| {k.describe()} | {apirequests.attribute(k)} | {n:.0f} | {n / jobs:.2f} |" for k, n in rows]
    for owner, n in sorted(apirequests.by_owner(requests).items()):
        lines.append(f"| **all** | {owner} | {n:.0f} | {n / jobs:.2f} |")
    lines.append(f"| **all** | everyone | {total:.0f} | {total / jobs:.2f} |")
    return lines


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 jobs on 10 nodes instead of 500 on 100")
    parser.add_argument("--dra", action="store_true", help="every job in DRA mode (its claim allocated), no peer run")
    args = parser.parse_args()
    print(run_dra(args.quick) if args.dra else run(args.quick))
