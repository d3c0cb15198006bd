from __future__ import annotations

import argparse

import pytest
from gpulane_operator.cli import flags_of, register
from gpulane_operator.settings import SettingsError, env_name, keys, load


def test_flag_beats_env_beats_file_beats_default() -> None:
    text = "scheduling: {ordering: srtf, preemption: false}\nmetrics: {port: 9000}\n"
    env = {"GPULANE_SCHEDULING_ORDERING": "pack", "GPULANE_METRICS_PORT": "9100"}
    s = load(text, env, {"scheduling.ordering": "fair"})
    assert s.scheduling.ordering == "fair" and s.metrics.port == 9100 and s.scheduling.preemption is False
    assert load().scheduling.ordering == "fifo" and load().metrics.port == 8080


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("scheduling: {colour: red}", {}, "scheduling.colour (from file): unknown setting"),
        ("", {"GPULANE_METRICS_PORT": "http"}, "metrics.port (from environment): expected a int"),
        ("", {"GPULANE_SCHEDULING_PREEMPTION": "maybe"}, "expected true or false"),
        ("", {"GPULANE_SCHEDULING_ORDERING": "lifo"}, "scheduling.ordering"),
        ("", {"GPULANE_SCHEDULING_PLACEMENT": "random"}, "scheduling.placement: unknown policy"),
        ("", {"GPULANE_SCOPE_NODE_SELECTOR": "=x"}, "scope.node_selector"),
    ],
)
def test_bad_settings_name_key_and_source(text: str, env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load(text, env)


def test_cli_flags_map_onto_setting_keys() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["operator", "--ordering", "srtf", "--no-preemption", "--namespace", "a", "--standalone"])
    flags = flags_of(args)
    assert set(flags) <= set(keys())
    s = load(None, {}, flags)
    assert (s.scheduling.ordering, s.scheduling.preemption, s.scope.namespaces) == ("srtf", False, ("a",))
    assert s.peering.standalone is True and env_name("scope.namespaces") == "GPULANE_SCOPE_NAMESPACES"
