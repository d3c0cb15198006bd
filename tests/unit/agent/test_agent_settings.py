"""Agent configuration: flag > env > file, and every bad value names its field."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_agent.coordinator.settings import TurnSettings
from gpulane_agent.settings import BackendKind, EnforcementPolicy, SettingsError, load_config
from gpulane_core.ordering import OrderingPolicy


def test_defaults() -> None:
    config = load_config(None, {}, {"node_name": "n1"})
    assert config.version == "v1"
    assert config.backend.kind is BackendKind.NVML
    assert config.backend.fail_on_init is False
    assert config.device_plugin.dir == "/var/lib/kubelet/device-plugins/"
    assert config.device_plugin.memory_unit_mib == 256
    assert config.metrics.port == 9400
    assert config.metrics.dcgm_compat is False  # only gpulane_* families unless asked
    assert config.coordinator.socket == "/var/run/gpulane/coordinator.sock"
    assert config.backend.fake_process_dir == "/run/gpulane/fake-gpu/processes"


def test_fake_process_dir_from_every_source(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("version: v1\nbackend: {kind: fake, fake_process_dir: /from/file}\n")
    assert load_config(str(file), {}, {"node_name": "n"}).backend.fake_process_dir == "/from/file"
    env = {"GPULANE_AGENT_BACKEND_FAKE_PROCESS_DIR": "/from/env"}
    assert load_config(str(file), env, {"node_name": "n"}).backend.fake_process_dir == "/from/env"
    flags = {"node_name": "n", "backend.fake_process_dir": ""}  # empty turns the hook off
    assert load_config(str(file), env, flags).backend.fake_process_dir == ""


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text(
        "version: v1\nnode_name: from-file\nmetrics: {port: 1111}\nbackend: {kind: fake}\n"
        "enforcement: {policy: evict, interval_s: 2}\n"
    )
    env = {"GPULANE_AGENT_METRICS_PORT": "2222", "GPULANE_AGENT_NODE_NAME": "from-env", "UNRELATED": "x"}
    config = load_config(str(file), env, {"metrics.port": 3333, "node_name": None})
    assert config.metrics.port == 3333  # flag
    assert config.node_name == "from-env"  # env (the flag was not given)
    assert config.backend.kind is BackendKind.FAKE  # file
    assert config.enforcement.policy is EnforcementPolicy.EVICT
    assert config.enforcement.interval_s == 2.0


def test_dcgm_compat_from_file_env_and_flag(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("version: v1\nmetrics: {dcgm_compat: true}\n")
    assert load_config(str(file), {}, {"node_name": "n"}).metrics.dcgm_compat is True
    assert load_config(None, {"GPULANE_AGENT_METRICS_DCGM_COMPAT": "true"}, {"node_name": "n"}).metrics.dcgm_compat
    env_off = {"GPULANE_AGENT_METRICS_DCGM_COMPAT": "false"}
    assert load_config(str(file), env_off, {"node_name": "n"}).metrics.dcgm_compat is False  # env beats file
    assert load_config(None, env_off, {"node_name": "n", "metrics.dcgm_compat": True}).metrics.dcgm_compat


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GPULANE_AGENT_METRICS_DCGM_COMPAT": "sometimes"}, "metrics.dcgm_compat .*: expected true or false"),
        ({"GPULANE_AGENT_METRICS_PORT": "nine"}, r"metrics.port \(from env GPULANE_AGENT_METRICS_PORT\): expected an integer"),
        ({"GPULANE_AGENT_METRICS_PORT": "70000"}, "metrics.port: must be 0..65535"),
        ({"GPULANE_AGENT_BACKEND_KIND": "cuda"}, "backend.kind .*: must be one of"),
        ({"GPULANE_AGENT_BACKEND_FAIL_ON_INIT": "maybe"}, "backend.fail_on_init .*: expected true or false"),
        ({"GPULANE_AGENT_COORDINATOR_TURNS_POLICY": "lifo"}, "coordinator.turns.policy .*: must be one of"),
        ({"GPULANE_AGENT_COORDINATOR_TURNS_TURN_TIMEOUT_S": "0"}, "coordinator.turns.turn_timeout_s: must be positive"),
        ({"GPULANE_AGENT_DEVICE_PLUGIN_MEMORY_UNIT_MIB": "0"}, "device_plugin.memory_unit_mib"),
        ({"GPULANE_AGENT_ENFORCEMENT_POLICY": "kill"}, "enforcement.policy"),
        ({"GPULANE_AGENT_COORDINATOR_SOCKET": "rel.sock"}, "coordinator.socket"),
        ({"GPULANE_AGENT_BACKEND_FAKE_PROCESS_DIR": "run/x"}, "backend.fake_process_dir: must be an absolute path"),
    ],
)
def test_bad_values_name_the_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_config(None, env, {"node_name": "n"})


def test_file_errors(tmp_path: Path) -> None:
    bad_version = tmp_path / "v.yaml"
    bad_version.write_text("version: v2\n")
    with pytest.raises(SettingsError, match=r"version: only v1"):
        load_config(str(bad_version), {}, {})
    typo = tmp_path / "t.yaml"
    typo.write_text("version: v1\nmetrics: {prot: 1}\n")
    with pytest.raises(SettingsError, match=r"metrics.prot \(from file\): unknown setting \(known in metrics: address, port"):
        load_config(str(typo), {}, {})
    with pytest.raises(SettingsError, match=r"config file: cannot read"):
        load_config(str(tmp_path / "missing.yaml"), {}, {})


def test_coordinator_turns_from_every_source(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("coordinator: {turns: {policy: fair, window_s: 30, round_policies: [weight, fair]}}\n")
    env = {"GPULANE_AGENT_COORDINATOR_TURNS_WINDOW_S": "45", "GPULANE_AGENT_COORDINATOR_TURNS_MAX_MISSED_DEADLINES": "5"}
    config = load_config(str(file), env, {"coordinator.turns.offload_on_switch": "false"})
    turns = config.coordinator.turns
    assert turns.policy is OrderingPolicy.FAIR and turns.rounds
    assert turns.round_policies == {OrderingPolicy.WEIGHT, OrderingPolicy.FAIR}
    assert (turns.window_s, turns.max_missed_deadlines, turns.offload_on_switch) == (45.0, 5, False)
    assert load_config(None, {}, {"node_name": "n"}).coordinator.turns == TurnSettings()
