"""`--real-nodes` where containerd cannot run: one clear error naming it, and nothing half-started.

Two ways containerd fails, through the `containerd` dev setting (GPULANE_DEV_CONTAINERD):
- it cannot even answer `--version` (a broken install): refused before any process starts;
- it answers, but dies when the node starts it: the control plane and the node already started are
  taken down again, leaving no process, network namespace, cgroup, mount or state file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from gpulane_dev import devcluster, nodehost
from gpulane_dev.binaries import locate
from realcluster import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(300)]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def gpulane_cgroups() -> set[str]:
    return {str(p) for p in nodehost.CGROUP_ROOT.glob("*/gpulane/*")}


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def mounts_mentioning(text: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if text in line]


def fake_containerd(path: Path, *, answers_version: bool) -> Path:
    version = 'if [ "$1" = --version ]; then echo "containerd fake 0.0"; exit 0; fi\n' if answers_version else ""
    path.write_text(f"#!/bin/sh\n{version}echo 'containerd: failed to load the overlayfs snapshotter' >&2\nexit 1\n")
    path.chmod(0o755)
    return path


def up_with(state_dir: Path, containerd: Path) -> Exception:
    options = devcluster.UpOptions(state_dir=state_dir, nodes=0, real_nodes=1, agents=False, repo=ROOT,
                                   crds_dir=ROOT / "crds", containerd=containerd)  # fmt: skip
    with pytest.raises(Exception) as caught:
        devcluster.up(options, locate())
    return caught.value


def assert_nothing_left(state_dir: Path, netns: set[str], cgroups: set[str]) -> None:
    assert not (state_dir / devcluster.STATE_FILE).exists()
    assert netns_names() == netns
    assert gpulane_cgroups() <= cgroups
    assert processes_mentioning(str(state_dir)) == []
    assert mounts_mentioning(str(state_dir)) == []


def test_a_containerd_that_cannot_run_is_refused_before_anything_starts(tmp_path: Path) -> None:
    netns, cgroups = netns_names(), gpulane_cgroups()
    state_dir = tmp_path / "cluster"
    broken = fake_containerd(tmp_path / "containerd", answers_version=False)
    error = up_with(state_dir, broken)
    assert isinstance(error, nodehost.NodeHostError)
    message = str(error)
    assert message.startswith("--real-nodes cannot run on this machine; missing: containerd cannot run:")
    assert str(broken) in message and "exited with status 1" in message and "overlayfs snapshotter" in message
    assert not (state_dir / "run").exists(), "the control plane was started before the check"
    assert_nothing_left(state_dir, netns, cgroups)


def test_a_containerd_that_dies_on_start_takes_the_half_started_cluster_down(tmp_path: Path) -> None:
    netns, cgroups = netns_names(), gpulane_cgroups()
    state_dir = tmp_path / "cluster"
    dying = fake_containerd(tmp_path / "containerd", answers_version=True)
    error = up_with(state_dir, dying)
    message = str(error)
    assert "containerd/gpulane-real-0 exited with status 1" in message, message
    assert "overlayfs snapshotter" in message  # its log tail is in the error
    assert_nothing_left(state_dir, netns, cgroups)
