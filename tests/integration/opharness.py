"""Helpers for the operator's integration tests: a real `gpulane operator` subprocess (so kill -9 is
real), GPUShareJob creation, waiting, and an independent lane-invariant watcher over pod annotations."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gpulane_core.lanes import GpuLanes, Lane, Tenant, check_invariant
from gpulane_core.model import JobId, LaneId
from gpulane_operator.names import GPUNODES, GROUP, PLURAL, VERSION
from kubernetes import client, watch

__all__ = ["GPUNODES", "GROUP", "PLURAL", "VERSION"]
T = TypeVar("T")
POOL_LABEL = "gpulane.dev/test-pool"
PLACED = ("Scheduled", "Running")  # phases of a job whose pod is bound


class OperatorProcess:
    """`gpulane operator` in its own process group, scoped to one namespace and one node pool."""

    def __init__(self, namespace: str, pool: str, log: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.argv = [
            sys.executable, "-m", "gpulane_core.cli", "operator", "--namespace", namespace,
            "--node-selector", f"{POOL_LABEL}={pool}", "--metrics-port", "0", *extra,
        ]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def new_pool(api: client.ApiClient, nodes: Sequence[str]) -> str:
    """Label ``nodes`` with a fresh pool name (an operator scoped to it sees only them); the name."""
    pool = f"p{secrets.token_hex(3)}"
    core = client.CoreV1Api(api)
    for name in nodes:
        core.patch_node(name, {"metadata": {"labels": {POOL_LABEL: pool}}})
    return pool


def job_manifest(
    name: str, persistent: str, ephemeral: str, *, cls: str = "guaranteed", pod_annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPUShareJob",
        "metadata": {"name": name},
        "spec": {
            "memory": {"persistent": persistent, "ephemeral": ephemeral},
            "class": cls,
            "template": {
                "metadata": {"annotations": pod_annotations or {}},
                "spec": {"containers": [{"name": "train", "image": "python:3.11-slim"}]},
            },
        },
    }


def create_job(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    made: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )
    return made


def list_jobs(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return {j["metadata"]["name"]: j for j in items}


def get_job(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    job: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return job


def delete_job(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def pods_by_job(api: client.ApiClient, namespace: str) -> dict[str, list[Any]]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app.kubernetes.io/managed-by=gpulane")
    out: dict[str, list[Any]] = defaultdict(list)
    for pod in pods.items:
        out[pod.metadata.labels["gpulane.dev/job"]].append(pod)
    return out


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def phase(job: dict[str, Any]) -> str:
    return str((job.get("status") or {}).get("phase") or "")


def scheduled_condition(job: dict[str, Any]) -> dict[str, Any]:
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Scheduled":
            return dict(cond)
    return {}


def lanes_from_pods(pods: Sequence[Any], capacity_mib: int) -> dict[tuple[str, int], GpuLanes]:
    """Lane state per GPU rebuilt only from pod annotations (independent of the operator's code)."""
    members: dict[tuple[str, int], list[tuple[str, int, int, str, bool]]] = defaultdict(list)
    for pod in pods:
        if pod.status and pod.status.phase in ("Succeeded", "Failed"):
            continue
        ann = pod.metadata.annotations or {}
        if "gpulane.dev/node" not in ann:
            continue
        indices = [int(i) for i in ann["gpulane.dev/gpu-index"].split(",")]
        job = f"{pod.metadata.namespace}/{pod.metadata.labels['gpulane.dev/job']}"
        for i in indices:
            members[(ann["gpulane.dev/node"], i)].append(
                (job, int(ann["gpulane.dev/persistent-mib"]), int(ann["gpulane.dev/ephemeral-mib"]),
                 ann["gpulane.dev/lane"], len(indices) > 1)
            )  # fmt: skip
    out: dict[tuple[str, int], GpuLanes] = {}
    for key, rows in members.items():
        by_lane: dict[str, list[tuple[str, int, int, str, bool]]] = defaultdict(list)
        for row in rows:
            by_lane[row[3]].append(row)
        lanes = tuple(
            Lane(
                LaneId(lane),
                capacity_mib - sum(r[1] for r in group) if group[0][4] else max(r[2] for r in group),
                tuple(JobId(r[0]) for r in group),
                exclusive=group[0][4],
            )
            for lane, group in sorted(by_lane.items())
        )
        tenants = tuple(Tenant(JobId(r[0]), r[1], r[2], LaneId(r[3])) for r in rows)
        out[key] = GpuLanes(capacity_mib, lanes, tenants, len(lanes))
    return out


class InvariantWatcher:
    """Watches the namespace's pods; on every event re-checks the lane invariant on every GPU."""

    def __init__(self, api: client.ApiClient, namespace: str, capacity_mib: int) -> None:
        self.api, self.namespace, self.capacity = api, namespace, capacity_mib
        self.violations: list[str] = []
        self.events = 0
        self.uids_by_job: dict[str, set[str]] = defaultdict(set)  # every pod ever seen, per job label
        self._pods: dict[str, Any] = {}
        self._watch = watch.Watch()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        core = client.CoreV1Api(self.api)
        while not self._stopping.is_set():
            self._pods = {}  # a (re)started watch lists every pod again as ADDED
            try:
                for event in self._watch.stream(core.list_namespaced_pod, self.namespace, timeout_seconds=600):
                    self._observe(event)
            except Exception:  # the stream broke (or was stopped): start over unless stopping
                if self._stopping.is_set():
                    return
                self._watch = watch.Watch()

    def _observe(self, event: dict[str, Any]) -> None:
        pod = event["object"]
        if event["type"] == "DELETED":
            self._pods.pop(pod.metadata.name, None)
        else:
            self._pods[pod.metadata.name] = pod
        self.events += 1
        job = (pod.metadata.labels or {}).get("gpulane.dev/job")
        if job:
            self.uids_by_job[job].add(pod.metadata.uid)
        for key, lanes in lanes_from_pods(list(self._pods.values()), self.capacity).items():
            self.violations += [f"{key}: {p}" for p in check_invariant(lanes)]

    def __enter__(self) -> InvariantWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._watch.stop()
        self._thread.join(timeout=5)
