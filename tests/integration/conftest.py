"""Integration fixtures: one real Kubernetes control plane (etcd + kube-apiserver + kwok) per session.

Fixture names are shared by every component's integration tests; keep them stable.

Session-scoped (started lazily, once, by the first test that asks):
- ``control_plane``: a running ``gpulane_dev.controlplane.ControlPlane``. ``.kubeconfig`` (Path, admin
  client cert embedded), ``.server`` ("https://127.0.0.1:<port>"), ``.credentials`` (``user``,
  ``groups``, ``client_cert``, ``client_key``, ``ca_cert``, ``token`` — the same admin by bearer
  token), ``.restart_apiserver()`` (returns seconds until /readyz; watches break like in a rollout),
  ``.timings``, ``.etcd_url``.
- ``dev_binaries``: ``gpulane_dev.binaries.Binaries`` (kube_apiserver, etcd, kwok, helm, kubectl,
  prometheus, promtool paths).
- ``crds``: every CRD in the repo's ``crds/`` installed and Established; the value is their names.

Function-scoped:
- ``kubeconfig``: the kubeconfig Path; ``KUBECONFIG`` is exported for the test (and its subprocesses).
- ``kube_api``: a ``kubernetes.client.ApiClient`` (sync) for the admin, closed after the test.
- ``namespace``: a fresh namespace name; deleted afterwards (it stays Terminating: see below).
- ``fake_gpu_nodes``: factory ``fake_gpu_nodes(count, gpus_per_node=4, gpu_memory_mib=16384,
  prefix=None) -> list[str]``; kwok-managed Nodes, Ready when returned, advertising
  ``gpulane.dev/gpu-memory`` (256 MiB units) and ``nvidia.com/gpu``, labelled ``nvidia.com/gpu.product``,
  ``nvidia.com/gpu.memory`` (MiB), ``nvidia.com/gpu.count``, ``gpulane.dev/fake-gpu=true``; deleted after.

What this control plane is not: there is no kube-controller-manager (no garbage collection of owned
objects, namespaces never finish deleting, no ServiceAccount tokens, Deployments/Jobs create no Pods)
and no scheduler (bind with the Binding subresource; kwok then runs the pod). kwok completes a Running
pod annotated ``pod-complete.stage.kwok.x-k8s.io/delay: "3s"`` after that delay.

Missing binaries FAIL the requesting tests (run ``make binaries``); they are never skipped.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpulane_dev import crds as crdmod
from gpulane_dev import fakenodes
from gpulane_dev.binaries import Binaries, BinariesMissing, locate
from gpulane_dev.controlplane import ControlPlane, ControlPlaneOptions
from gpulane_dev.kubeclient import connected
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from opharness import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = ROOT / "crds"

FakeGpuNodes = Callable[..., list[str]]


@pytest.fixture(scope="session")
def dev_binaries() -> Binaries:
    try:
        return locate()
    except BinariesMissing as exc:
        pytest.fail(f"the real control plane cannot be obtained: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def control_plane(dev_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("control-plane")
    try:
        plane = ControlPlane.start(ControlPlaneOptions.from_binaries(dev_binaries, workdir))
    except Exception as exc:
        pytest.fail(f"the real control plane did not start: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> list[str]:
    """Install crds/*.yaml; a CRD the apiserver rejects fails the tests that need it, loudly."""
    with connected(control_plane.kubeconfig) as api:
        return crdmod.install_directory(api, CRDS_DIR)


@pytest.fixture
def kubeconfig(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    return control_plane.kubeconfig


@pytest.fixture
def kube_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with connected(control_plane.kubeconfig) as api:
        yield api


def _dns_label(text: str, limit: int) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:limit].rstrip("-") or "t"


@pytest.fixture
def operator(namespace: str, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """operator(pool, *flags): a standalone `gpulane operator` scoped to the test's namespace and pool."""
    started: list[OperatorProcess] = []

    def start(pool: str, *extra: str) -> OperatorProcess:
        proc = OperatorProcess(namespace, pool, tmp_path / f"operator-{len(started)}.log", "--standalone", *extra)
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{_dns_label(request.node.name, 48)}-{secrets.token_hex(3)}"
    with connected(control_plane.kubeconfig) as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        try:
            yield name
        finally:
            try:
                core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def fake_gpu_nodes(control_plane: ControlPlane) -> Iterator[FakeGpuNodes]:
    created: list[str] = []
    with connected(control_plane.kubeconfig) as api:

        def make(
            count: int, gpus_per_node: int = 4, gpu_memory_mib: int = 16384, prefix: str | None = None
        ) -> list[str]:
            prefix = prefix or f"gpu-{secrets.token_hex(3)}"
            nodes = fakenodes.fleet(count, prefix, gpus=gpus_per_node, gpu_memory_mib=gpu_memory_mib)
            names = fakenodes.create(api, nodes)
            created.extend(names)
            fakenodes.wait_ready(api, names)
            return names

        try:
            yield make
        finally:
            fakenodes.delete(api, created)
