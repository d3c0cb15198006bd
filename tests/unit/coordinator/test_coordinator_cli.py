"""The standalone coordinator loads its settings through gpulane_core.settings, like the agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_agent.coordinator.__main__ import parse_args
from gpulane_agent.coordinator.settings import TurnSettings
from gpulane_core.ordering import OrderingPolicy


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("socket_path: /tmp/file.sock\nturns: {policy: srtf, window_s: 9, offload_on_switch: false}\n")
    env = {"GPULANE_COORDINATOR_TURNS_POLICY": "fair", "GPULANE_COORDINATOR_TURNS_WINDOW_S": "7"}
    s = parse_args(["--config", str(file), "--window", "5", "--set", "turns.max_missed_deadlines=4"], env)
    assert (s.socket_path, s.turns.policy, s.turns.window_s) == ("/tmp/file.sock", OrderingPolicy.FAIR, 5.0)
    assert s.turns.max_missed_deadlines == 4 and s.turns.offload_on_switch is False
    assert parse_args(["--socket", "/tmp/x.sock"], {}).turns == TurnSettings()


def test_bad_values_exit_with_the_field_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--max-missed", "0"], {})
    assert "turns.max_missed_deadlines: must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args([], {"GPULANE_COORDINATOR_TURNS_POLICY": "lifo"})
    assert "turns.policy (from env GPULANE_COORDINATOR_TURNS_POLICY): must be one of" in capsys.readouterr().err
