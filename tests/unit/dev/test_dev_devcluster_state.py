"""The dev cluster's state file, the agents' fake GPU spec and socket paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from gpulane_dev.devcluster import (
    ClusterState,
    DevClusterError,
    UpOptions,
    fake_agent_spec,
    read_state,
    socket_dir,
)
from gpulane_dev.procs import ProcessRecord
from gpulane_dev.realnodes import RealNodeRecord


def test_state_round_trips(tmp_path: Path) -> None:
    state = ClusterState(
        kubeconfig="/s/kubeconfig", server="https://127.0.0.1:1", admin_token="t", ca_cert="/s/ca.crt",
        processes=(ProcessRecord("etcd", 10, "/b/etcd", "/l/etcd.log"),), nodes=("gpu-node-0",),
        agent_metrics={"gpu-node-0": 19400},
        real_nodes=(RealNodeRecord("gpulane-real-0", 0, "/s/nodes/gpulane-real-0", 42, 10250,
                                   "http://10.250.0.2:9400/metrics"),),
    )  # fmt: skip
    (tmp_path / "state.json").write_text(state.to_json())
    assert read_state(tmp_path) == state
    assert read_state(tmp_path / "absent") is None


def test_unreadable_state_says_where(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"version": 1}')
    with pytest.raises(DevClusterError, match=r"state\.json: unreadable state \(missing field 'processes'\)"):
        read_state(tmp_path)
    (tmp_path / "state.json").write_text('{"version": 7}')
    with pytest.raises(DevClusterError, match="state version 7, expected 1"):
        read_state(tmp_path)


def test_fake_agent_spec_matches_the_node() -> None:
    spec = yaml.safe_load(fake_agent_spec(2, 8192, "Fake-GPU-8G"))
    assert spec == {"version": "v1", "gpus": [{"model": "Fake-GPU-8G", "memory": "8192Mi", "count": 2}]}


def test_socket_paths_stay_short(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120) / "dev-cluster"
    sock = socket_dir(deep) / "gpu-node-0" / "device-plugins" / "gpulane.sock"
    assert len(str(sock)) < 100
    assert socket_dir(deep) == socket_dir(deep) != socket_dir(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"nodes": -1}, "--nodes: -1 must be >= 0"), ({"gpus_per_node": 0}, "--gpus-per-node: 0 must be >= 1")],
)
def test_bad_up_options(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DevClusterError) as info:
        UpOptions(state_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_status_lines_show_each_process_and_agent_metrics() -> None:
    from gpulane_dev.devcluster import ProcessStatus, format_status

    state = ClusterState(
        kubeconfig="/s/kc", server="https://127.0.0.1:1", admin_token="t", ca_cert="/s/ca.crt",
        processes=(), nodes=("n-0",), agent_metrics={"n-0": 40001},
    )  # fmt: skip
    rows = [ProcessStatus("etcd", 10, True, "/l/etcd.log"), ProcessStatus("agent/n-0", 11, False, "/l/a.log")]
    text = format_status(state, rows, ready=False)
    assert text.splitlines() == [
        "dev cluster: apiserver https://127.0.0.1:1 NOT ready",
        "kubeconfig: /s/kc",
        "  etcd                     pid 10       running  log /l/etcd.log",
        "  agent/n-0                pid 11       STOPPED  log /l/a.log  metrics http://127.0.0.1:40001/metrics",
        "fake GPU nodes: n-0",
    ]
    assert format_status(None, [], ready=False) == "dev cluster: not running (no state)"
