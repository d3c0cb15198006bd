"""e2e tier: the whole product on real kubelets (default, CI) or on kind (GPULANE_E2E_CLUSTER=kind).

Session fixture ``e2e_cluster`` (realcluster.E2ECluster): one real node with 2 fake GPUs x 16Gi, the
chart installed with values-local.yaml (operator Deployment and agent DaemonSet as real pods on the real
kubelet). A missing component (containerd, the kubelet, root, ...) FAILS the tests with the missing piece
named: on CI machines this tier never skips. Only the kind backend skips, where Docker or kind is absent.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpulane_dev.binaries import locate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # opharness: invariant watcher

from realcluster import E2ECluster, backend, real_cluster

REAL_NODES = 1


def docker_problem() -> str | None:
    """Why kind cannot run here, or None when it can."""
    for tool in ("docker", "kind"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (the kind e2e needs Docker and kind; see hack/kind-e2e.sh)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out: the Docker daemon does not answer"
    if info.returncode != 0:
        return f"the Docker daemon is not reachable: {(info.stderr or info.stdout).strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="session")
def kind_available() -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ECluster]:
    if backend() == "kind":
        problem = docker_problem()
        if problem:
            pytest.skip(problem)
        import os

        yield E2ECluster(Path(os.environ["KUBECONFIG"]), locate(), ("gpulane-e2e-control-plane",), "kind",
                         image="gpulane-agent:dev", gpus_per_node=4)  # fmt: skip
        return
    with real_cluster(tmp_path_factory.mktemp("realnode-cluster"), REAL_NODES) as cluster:
        yield cluster


@pytest.fixture
def ns(e2e_cluster: E2ECluster) -> Iterator[str]:
    name = f"e2e-{secrets.token_hex(3)}"
    e2e_cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    e2e_cluster.core.delete_namespace(name)
