"""Every numbered example in examples/ applied against the real apiserver with the operator running."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from opharness import (
    PLACED,
    OperatorProcess,
    create_job,
    get_job,
    new_pool,
    phase,
    scheduled_condition,
    wait_for,
)

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


@pytest.fixture
def cluster(
    crds: list[str], kubeconfig: Path, kube_api: client.ApiClient, namespace: str,
    fake_gpu_nodes: Callable[..., list[str]], tmp_path: Path,
) -> Iterator[Callable[[int], None]]:  # fmt: skip
    started: list[OperatorProcess] = []

    def start(gpus: int) -> None:
        pool = new_pool(kube_api, fake_gpu_nodes(1, gpus_per_node=gpus, gpu_memory_mib=16384))
        started.append(OperatorProcess(namespace, pool, tmp_path / "operator.log", "--standalone").start())

    yield start
    for proc in started:
        proc.stop()


def test_01_one_job_runs(cluster: Callable[[int], None], kube_api: client.ApiClient, namespace: str) -> None:
    cluster(1)
    (job,) = docs("01-one-job.yaml")
    create_job(kube_api, namespace, job)
    placed = wait_for("placed", lambda: (j if phase(j := get_job(kube_api, namespace, "train-resnet")) in PLACED else None))
    assert placed["status"]["placement"]["laneSize"] == "5Gi"


def test_02_jobs_share_one_gpu(cluster: Callable[[int], None], kube_api: client.ApiClient, namespace: str) -> None:
    cluster(1)
    for job in docs("02-shared-gpu.yaml"):
        create_job(kube_api, namespace, job)
    names = [d["metadata"]["name"] for d in docs("02-shared-gpu.yaml")]
    wait_for("all placed", lambda: all(phase(get_job(kube_api, namespace, n)) in PLACED for n in names))
    lanes = {(p["gpuIndex"], p["lane"]) for n in names if (p := get_job(kube_api, namespace, n)["status"]["placement"])}
    assert lanes == {(0, "lane-0"), (0, "lane-1")}  # four jobs, one GPU, two lanes


def test_03_does_not_fit(cluster: Callable[[int], None], kube_api: client.ApiClient, namespace: str) -> None:
    cluster(1)
    (job,) = docs("03-does-not-fit.yaml")
    create_job(kube_api, namespace, job)
    cond = wait_for("unschedulable", lambda: (
        c if (c := scheduled_condition(get_job(kube_api, namespace, "too-big"))).get("reason") == "Unschedulable" else None
    ))  # fmt: skip
    assert "48Gi but the largest GPU holds 16Gi" in cond["message"]


def test_04_preemption(cluster: Callable[[int], None], kube_api: client.ApiClient, namespace: str) -> None:
    cluster(1)
    scavenger, deadline = docs("04-preemption.yaml")
    create_job(kube_api, namespace, scavenger)
    wait_for("scavenger placed", lambda: phase(get_job(kube_api, namespace, "scavenger")) in PLACED)
    create_job(kube_api, namespace, deadline)
    wait_for("deadline placed", lambda: phase(get_job(kube_api, namespace, "deadline")) in PLACED)
    assert phase(get_job(kube_api, namespace, "scavenger")) == "Pending"
