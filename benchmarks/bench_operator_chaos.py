"""Operator chaos (issue 12): kill -9 `gpulane operator --standalone` at seeded-random points while it places.

Real etcd + kube-apiserver + kwok; all jobs created first; even-numbered kills 0.2-3 s after exec, odd
ones 0-1.5 s after that replica's first bind (pod watch); a restart after each. After the last one every
job must be bound and Running, no job may ever have had two pods, no pod may lack its job, and every GPU
must keep sum(persistent) + sum(lane sizes) <= its memory, from pod annotations alone. Violations fail.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, cast

from gpulane_core import podcontract as pc
from gpulane_dev import binaries, crds, fakenodes, procs
from gpulane_dev.controlplane import ControlPlane, ControlPlaneOptions
from gpulane_dev.kubeclient import api_client
from kubernetes import client, watch

ROOT = Path(__file__).resolve().parents[1]
POOL = "gpulane.dev/chaos-pool"
NAMESPACE = "chaos"
GPU_MIB = 16384
SEED = 12
BIND_WAIT_S = 60.0  # an odd-numbered replica that binds nothing for this long is killed anyway (reported)
GROUP, VERSION, PLURAL = "gpulane.dev", "v1alpha1", "gpusharejobs"


class ChaosFailed(RuntimeError):
    """A check failed; the message is the full report section."""


class Kill(NamedTuple):  # not a dataclass: run_all loads this module without registering it in sys.modules
    number: int
    point: str  # "startup", "mid-placement" or why no bind was seen
    after_exec_s: float
    bound_at_kill: int


def _job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUShareJob", "metadata": {"name": name},
        "spec": {"memory": {"persistent": "1Gi", "ephemeral": "6Gi"},
                 "template": {"spec": {"containers": [{"name": "train", "image": "python:3.11-slim"}]}}},
    }  # fmt: skip


Gpu = tuple[str, int]  # (node, GPU index)
Member = tuple[int, str, int, int]  # a pod on a GPU: persistent MiB, lane, lane size MiB, ephemeral MiB


def _gpu_rows(pod: Any) -> list[tuple[Gpu, Member]]:
    """The GPUs a live pod's annotations name, with what it holds there; none for finished pods."""
    ann = pod.metadata.annotations or {}
    if pc.NODE not in ann or (pod.status and pod.status.phase in ("Succeeded", "Failed")):
        return []
    member = (int(ann[pc.PERSISTENT_MIB]), ann[pc.LANE], int(ann[pc.LANE_SIZE_MIB]), int(ann[pc.EPHEMERAL_MIB]))
    return [((ann[pc.NODE], int(i)), member) for i in ann[pc.GPU_INDEX].split(",")]


def gpu_violations(members: list[Member], gpu: Gpu) -> list[str]:
    """The lane rules on one GPU; a lane counts once, at the largest size any of its pods was given."""
    lanes: dict[str, int] = {}
    problems = []
    for _, lane, size, ephemeral in members:
        lanes[lane] = max(lanes.get(lane, 0), size)
        if ephemeral > size:
            problems.append(f"{gpu}: a pod's ephemeral {ephemeral} MiB exceeds its {lane} of {size} MiB")
    committed = sum(m[0] for m in members) + sum(lanes.values())
    if committed > GPU_MIB:
        problems.append(f"{gpu}: persistent + lanes = {committed} MiB > {GPU_MIB} MiB")
    return problems


class PodLog:
    """Every pod event of the namespace for the whole run: uids per job, binds, live lane checks."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core
        self.lock = threading.Lock()
        self.uids: dict[str, set[str]] = defaultdict(set)
        self.unlabelled: set[str] = set()
        # (resourceVersion, monotonic time) of each pod uid's first event with spec.nodeName
        self.binds: list[tuple[int, float]] = []
        self.bound: set[str] = set()
        self.on_gpu: dict[Gpu, dict[str, Member]] = defaultdict(dict)  # by pod uid
        self.live_violations: set[str] = set()
        self.restarts = 0
        self._stream = watch.Watch()  # type: ignore[no-untyped-call]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rv = ""
        while not self._stopping.is_set():
            kwargs = {"resource_version": rv} if rv else {}  # resume without a gap after a broken stream
            try:
                events = self._stream.stream(self.core.list_namespaced_pod, NAMESPACE, **kwargs)  # type: ignore[no-untyped-call]
                for event in events:
                    rv = event["object"].metadata.resource_version
                    self._observe(event["type"], event["object"])
            except Exception:  # the stream broke: resume from the last event unless stopping
                if self._stopping.is_set():
                    return
                with self.lock:
                    self.restarts += 1
                self._stream = watch.Watch()  # type: ignore[no-untyped-call]

    def _observe(self, kind: str, pod: Any) -> None:
        uid = pod.metadata.uid
        job = (pod.metadata.labels or {}).get(pc.LABEL_JOB)
        with self.lock:
            if job:
                self.uids[job].add(uid)
            else:
                self.unlabelled.add(pod.metadata.name)
            if pod.spec.node_name and uid not in self.bound:
                self.bound.add(uid)
                self.binds.append((int(pod.metadata.resource_version), time.monotonic()))
            for gpu in self.on_gpu.values():
                gpu.pop(uid, None)
            for key, member in [] if kind == "DELETED" else _gpu_rows(pod):
                self.on_gpu[key][uid] = member
                self.live_violations.update(gpu_violations(list(self.on_gpu[key].values()), key))

    def bound_count(self) -> int:
        with self.lock:
            return len(self.bound)

    def first_bind_after(self, rv: int) -> float | None:
        """When the first bind written after resourceVersion `rv` was seen (etcd revisions: comparable here)."""
        with self.lock:
            return next((t for r, t in self.binds if r > rv), None)

    def __enter__(self) -> PodLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._stream.stop()  # type: ignore[no-untyped-call]


class Operator:
    """One replica in its own process group (SIGKILL takes all of it), dying with the bench if that dies."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        env = {"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
        argv = (sys.executable, "-m", "gpulane_core.cli", "operator", "--standalone", "--namespace", NAMESPACE,
                "--node-selector", f"{POOL}=yes", "--metrics-port", "0")  # fmt: skip
        self.started = time.monotonic()
        self.proc = procs.start(procs.ProcessSpec("operator", argv, log, env), die_with_parent=True)

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.stop()  # reaps it


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def chaos(log: PodLog, kubeconfig: Path, workdir: Path, jobs: int, kills: int) -> list[Kill]:
    """Start `kills` replicas one after another, killing each at its seeded point; the caller restarts the last."""
    rng = random.Random(SEED)
    points: list[Kill] = []
    for k in range(kills):
        delay = rng.uniform(0.2, 3.0) if k % 2 == 0 else rng.uniform(0.0, 1.5)
        # Binds after this revision are this replica's: the one killed before it can no longer write, but
        # its last binds may still be on their way through the watch (seen 0.25 s after the next exec).
        listed: Any = log.core.list_namespaced_pod(NAMESPACE, limit=1)
        since = int(listed.metadata.resource_version)
        op = Operator(kubeconfig, workdir / f"operator-{k:02d}.log")
        point = "startup"
        try:
            if k % 2 == 0:
                _sleep_until(op.started + delay)
            else:
                bind = None
                while bind is None and log.bound_count() < jobs and time.monotonic() < op.started + BIND_WAIT_S:
                    time.sleep(0.01)
                    bind = log.first_bind_after(since)
                point = "mid-placement" if bind else ("all bound" if log.bound_count() >= jobs else "no bind")
                _sleep_until((bind if bind is not None else time.monotonic()) + delay)
        finally:
            op.kill9()
        points.append(Kill(k, point, time.monotonic() - op.started, log.bound_count()))
    return points


def final_violations(custom: client.CustomObjectsApi, core: client.CoreV1Api, log: PodLog) -> list[str]:
    """Every check of the brief, on a fresh listing plus the uids the watch saw over the whole run."""
    listed: Any = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    jobs = {j["metadata"]["name"]: j for j in listed["items"]}
    pods: list[Any] = core.list_namespaced_pod(NAMESPACE).items
    problems: list[str] = []
    with log.lock:
        uids = {job: set(u) for job, u in log.uids.items()}
        problems += [f"pod {name} has no {pc.LABEL_JOB} label" for name in sorted(log.unlabelled)]
        live = [f"live: {v}" for v in sorted(log.live_violations)]
    for name in sorted(jobs):
        if len(uids.get(name, ())) != 1:
            problems.append(f"job {name}: {len(uids.get(name, ()))} pods ever ({sorted(uids.get(name, ()))})")
        phase = (jobs[name].get("status") or {}).get("phase")
        if phase != "Running":
            problems.append(f"job {name}: phase {phase}")
    problems += [f"pods of unknown job {job}" for job in sorted(set(uids) - set(jobs))]
    with_pod = {(p.metadata.labels or {}).get(pc.LABEL_JOB) for p in pods}
    problems += [f"job {name}: no pod now" for name in sorted(set(jobs) - with_pod)]
    on_gpu: dict[Gpu, list[Member]] = defaultdict(list)
    for pod in pods:
        job = jobs.get((pod.metadata.labels or {}).get(pc.LABEL_JOB, ""))
        owners = {o.uid for o in pod.metadata.owner_references or ()}
        if job is None or job["metadata"]["uid"] not in owners:
            problems.append(f"pod {pod.metadata.name}: no GPUShareJob owns it")
        ann = pod.metadata.annotations or {}
        if not pod.spec.node_name or ann.get(pc.NODE) != pod.spec.node_name:
            problems.append(f"pod {pod.metadata.name}: bound to {pod.spec.node_name!r}, assigned {ann.get(pc.NODE)!r}")
        for key, member in _gpu_rows(pod):
            on_gpu[key].append(member)
    for key, members in sorted(on_gpu.items()):
        problems += gpu_violations(members, key)
    return problems + live


def _settled(custom: client.CustomObjectsApi, core: client.CoreV1Api, jobs: int) -> bool:
    listed: Any = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    running = sum(1 for j in listed["items"] if (j.get("status") or {}).get("phase") == "Running")
    pods: list[Any] = core.list_namespaced_pod(NAMESPACE).items
    bound = sum(1 for p in pods if p.spec.node_name)
    return running == jobs and bound >= jobs


def measure(plane: ControlPlane, jobs: int, nodes: int, gpus: int, kills: int, workdir: Path,
            settle_s: float) -> dict[str, Any]:  # fmt: skip
    api = api_client(plane.kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    names = fakenodes.create(api, fakenodes.fleet(nodes, "chaos", gpus=gpus, gpu_memory_mib=GPU_MIB))
    fakenodes.wait_ready(api, names, timeout=120)
    for name in names:
        core.patch_node(name, {"metadata": {"labels": {POOL: "yes"}}})
    core.create_namespace(cast(Any, {"metadata": {"name": NAMESPACE}}))
    with PodLog(core) as log:
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, _job(f"job-{i:04d}")), range(jobs)))  # fmt: skip
        points = chaos(log, plane.kubeconfig, workdir, jobs, kills)
        last = Operator(plane.kubeconfig, workdir / "operator-final.log")
        try:
            deadline = time.monotonic() + settle_s
            while not (done := _settled(custom, core, jobs)) and time.monotonic() < deadline and last.proc.alive():
                time.sleep(0.5)
            settled = time.monotonic()
            time.sleep(2.0)  # a late cycle that would create or delete a pod shows itself in the checks
            problems = final_violations(custom, core, log)
            if not done:  # the checks above say which jobs; the replica's last words say why
                tail = procs.log_tail(workdir / "operator-final.log")[-1500:]
                problems.insert(0, f"not every job bound and Running {settle_s:.0f} s after the last restart:\n{tail}")
        finally:
            last.proc.stop()
        restarts = log.restarts
    return {"kills": points, "wall": settled - start, "recovery": settled - last.started,
            "problems": problems, "watch_restarts": restarts}  # fmt: skip


def run(quick: bool) -> str:
    jobs, nodes, gpus, kills, settle_s = (60, 10, 8, 4, 120.0) if quick else (500, 100, 8, 20, 600.0)
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        workdir = Path(tmp)
        options = ControlPlaneOptions.from_binaries(binaries.locate(), workdir / "cp", with_kwok=True)
        with ControlPlane.start(options) as plane:
            crds.install_directory(api_client(plane.kubeconfig), ROOT / "crds")
            r = measure(plane, jobs, nodes, gpus, kills, workdir, settle_s)
    points: list[Kill] = r["kills"]
    counts = {p: sum(1 for k in points if k.point == p) for p in dict.fromkeys(k.point for k in points)}
    problems: list[str] = r["problems"]
    section = "\n".join(
        [
            "## Operator chaos: kill -9 while placing",
            "",
            f"{jobs} GPUShareJobs (1Gi + 6Gi) created, then `gpulane operator --standalone` SIGKILLed {len(points)} times",
            f"(seed {SEED}), restarted after each: even kills 0.2-3 s after exec, odd 0-1.5 s after that replica's first bind.",
            f"kube-apiserver + etcd + kwok, {nodes} fake nodes x {gpus} GPUs x 16Gi, {os.cpu_count()} cores shared by all. Checks:",
            "one pod uid per job over the run (pod watch), each pod owned by its job and bound where its annotations say,",
            "every job Running, sum(persistent) + sum(lane sizes) <= GPU memory per GPU from annotations (every event, end).",
            "",
            "| jobs | nodes x GPUs | kills | kill points | wall (s) | last restart to all Running (s) | violations |",
            "|---|---|---|---|---|---|---|",
            f"| {jobs} | {nodes} x {gpus} | {len(points)} | {', '.join(f'{n} {p}' for p, n in counts.items())} "
            f"| {r['wall']:.1f} | {r['recovery']:.1f} | {len(problems)} |",
            "",
            "Kills (index: point, seconds after exec, pods bound so far): "
            + "; ".join(f"{k.number}: {k.point} {k.after_exec_s:.2f} s {k.bound_at_kill}" for k in points) + ".",
            f"Pod-watch restarts (resumed from the last resourceVersion): {r['watch_restarts']}.",
        ]
        + ([""] + [f"- {p}" for p in problems[:50]] if problems else [])
    )
    if problems:
        raise ChaosFailed(section)
    return section


if __name__ == "__main__":
    try:
        print(run("--quick" in sys.argv))
    except ChaosFailed as failed:
        print(failed)
        sys.exit(1)
