"""`gpulane dev-cluster up/status/down` through the real CLI: detached processes, fake GPU nodes, agents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpulane_dev.binaries import Binaries

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GPUNODE_CRD = ROOT / "crds" / "gpunodes.gpulane.dev.yaml"
PEERING_CRD = ROOT / "crds" / "kopfpeerings.kopf.dev.yaml"  # both kopf CRDs: KopfPeering, ClusterKopfPeering


def gpulane(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpulane_core.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT,
    )  # fmt: skip


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def state_dir(tmp_path: Path, dev_binaries: Binaries) -> Iterator[Path]:
    state = tmp_path / "dev-cluster"
    yield state
    gpulane("dev-cluster", "--state-dir", str(state), "down")  # never leak processes, whatever happened


def test_up_status_down(state_dir: Path, dev_binaries: Binaries, tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    # The GPUNode CRD (the agents publish GPUNodes) and kopf's peering CRDs (the dev cluster then creates
    # the ClusterKopfPeering a peered `gpulane operator` waits for); this test is not about the other CRDs.
    shutil.copy(GPUNODE_CRD, crds / GPUNODE_CRD.name)
    shutil.copy(PEERING_CRD, crds / PEERING_CRD.name)
    up = gpulane(
        "dev-cluster", "--state-dir", str(state_dir), "up",
        "--nodes", "1", "--gpus-per-node", "2", "--gpu-memory", "8Gi", "--node-prefix", "dc", "--crds", str(crds),
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    kubeconfig = Path(up.stdout.strip().splitlines()[-1])
    assert kubeconfig.is_file()

    state = json.loads((state_dir / "state.json").read_text())
    names = [p["name"] for p in state["processes"]]
    assert names == ["etcd", "kube-apiserver", "kwok", "agent/dc-0"]
    pids = [p["pid"] for p in state["processes"]]
    assert all(pid_alive(pid) for pid in pids)  # still running after `up` returned

    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    nodes = json.loads(subprocess.run(
        [str(dev_binaries.kubectl), "get", "nodes", "-o", "json"], env=env, capture_output=True, text=True, check=True,
    ).stdout)  # fmt: skip
    (node,) = nodes["items"]
    assert node["metadata"]["name"] == "dc-0"
    assert node["status"]["allocatable"]["gpulane.dev/gpu-memory"] == "64"  # 2 x 8192 MiB / 256 MiB
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    peering = subprocess.run([str(dev_binaries.kubectl), "get", "clusterkopfpeering", "gpulane", "-o", "name"],
                             env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert peering.stdout.strip() == "clusterkopfpeering.kopf.dev/gpulane", peering.stderr

    # The fake-backend agent publishes its GPUNode (2 GPUs of 8192 MiB) through the real apiserver.
    deadline = time.monotonic() + 60
    gpunode: dict[str, object] = {}
    while time.monotonic() < deadline:
        got = subprocess.run([str(dev_binaries.kubectl), "get", "gpunode", "dc-0", "-o", "json"],
                             env=env, capture_output=True, text=True, check=False)  # fmt: skip
        if got.returncode == 0 and json.loads(got.stdout).get("status", {}).get("gpus"):
            gpunode = json.loads(got.stdout)
            break
        time.sleep(0.5)
    assert gpunode, f"no GPUNode from the agent; its log:\n{Path(state['processes'][3]['log']).read_text()[-3000:]}"
    gpus = gpunode["status"]["gpus"]  # type: ignore[index]
    assert [g["memoryMiB"] for g in gpus] == [8192, 8192]

    status = gpulane("dev-cluster", "--state-dir", str(state_dir), "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.splitlines()[0].endswith(" ready")
    assert status.stdout.count(" running ") == 4

    down = gpulane("dev-cluster", "--state-dir", str(state_dir), "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids)
    after = gpulane("dev-cluster", "--state-dir", str(state_dir), "status")
    assert after.returncode == 1
    assert "not running" in after.stdout


def test_up_rejects_a_bad_gpu_memory_flag(state_dir: Path) -> None:
    bad = gpulane("dev-cluster", "--state-dir", str(state_dir), "up", "--gpu-memory", "lots")
    assert bad.returncode == 1
    assert "--gpu-memory" in bad.stderr and "'lots' is not a size" in bad.stderr
    assert not (state_dir / "state.json").exists()
