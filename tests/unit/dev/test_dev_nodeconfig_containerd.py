"""The node's containerd config follows its major version; the version is read from `containerd --version`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gpulane_dev import nodeconfig, nodehost


def layout(tmp_path: Path) -> nodeconfig.NodeLayout:
    return nodeconfig.NodeLayout("gpulane-real-0", tmp_path / "node")


def test_containerd_2_gets_a_version_3_config_with_cdi_and_the_oom_trap_handled(tmp_path: Path) -> None:
    text = nodeconfig.containerd_config(layout(tmp_path), nodeconfig.NodeNetwork(3), "docker.io/local/pause:1", 2)
    config = tomllib.loads(text)
    assert config["version"] == 3
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # real-node.md's trap: no CAP_SYS_RESOURCE here
    assert str(nodeconfig.CDI_DIR) in runtime["cdi_spec_dirs"]
    assert runtime["cni"]["bin_dirs"] == [str(nodeconfig.CNI_BIN_DIR)]
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "docker.io/local/pause:1"


def test_containerd_1_keeps_the_version_2_config(tmp_path: Path) -> None:
    text = nodeconfig.containerd_config(layout(tmp_path), nodeconfig.NodeNetwork(3), "docker.io/local/pause:1", 1)
    config = tomllib.loads(text)
    assert config["version"] == 2
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["restrict_oom_score_adj"] is True


def test_the_major_version_is_read_from_either_build() -> None:
    assert nodehost.containerd_major("containerd github.com/containerd/containerd/v2 2.4.2+unknown") == 2
    assert nodehost.containerd_major("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3") == 1
    assert nodehost.containerd_major("containerd fake") is None
