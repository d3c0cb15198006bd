from __future__ import annotations

import argparse

import pytest
from gpulane_operator.cli import flags_of, register
from gpulane_operator.settings import SettingsError, deprecated_env_names, env_name, keys, load


def test_flag_beats_env_beats_file_beats_default() -> None:
    text = "scheduling: {ordering: srtf, preemption: false}\nmetrics: {port: 9000}\n"
    env = {"GPULANE_OPERATOR_SCHEDULING_ORDERING": "pack", "GPULANE_OPERATOR_METRICS_PORT": "9100"}
    s = load(text, env, {"scheduling.ordering": "fair"})
    assert s.scheduling.ordering == "fair" and s.metrics.port == 9100 and s.scheduling.preemption is False
    assert load().scheduling.ordering == "fifo" and load().metrics.port == 8080


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("scheduling: {colour: red}", {}, "scheduling.colour (from file): unknown setting"),
        ("", {"GPULANE_OPERATOR_METRICS_PORT": "http"},
         "metrics.port (from env GPULANE_OPERATOR_METRICS_PORT): expected an integer"),
        ("", {"GPULANE_OPERATOR_SCHEDULING_PREEMPTION": "maybe"}, "expected true or false"),
        ("", {"GPULANE_OPERATOR_SCHEDULING_ORDERING": "lifo"}, "scheduling.ordering"),
        ("", {"GPULANE_OPERATOR_SCHEDULING_PLACEMENT": "nope"}, "scheduling.placement: unknown policy"),
        ("", {"GPULANE_OPERATOR_SCOPE_NODE_SELECTOR": "=x"}, "scope.node_selector"),
        ("scheduling: {node_loss_grace_s: -1}", {}, "scheduling.node_loss_grace_s: must not be negative, got -1"),
        ("", {"GPULANE_METRICS_PORT": "http"}, "metrics.port (from env GPULANE_METRICS_PORT): expected an integer"),
        ("peering: {handover_s: 0.2}", {}, "peering.handover_s: must be at least 0.5 s with peering"),
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
    assert s.peering.standalone is True and env_name("scope.namespaces") == "GPULANE_OPERATOR_SCOPE_NAMESPACES"


def test_set_reaches_every_key_and_named_flags_win() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["operator", "--set", "scheduling.resync_s=2.5", "--set", "metrics.port=1", "--metrics-port", "9"]
    )
    s = load(None, {}, flags_of(args))
    assert (s.scheduling.resync_s, s.metrics.port) == (2.5, 9)
    with pytest.raises(SettingsError, match=r"scheduling.resync \(from flag\): unknown setting"):
        load(None, {}, flags_of(parser.parse_args(["operator", "--set", "scheduling.resync=1"])))


def test_deprecated_names_still_work_but_the_new_name_wins() -> None:
    assert deprecated_env_names()["GPULANE_PEERING_PRIORITY"] == "peering.priority"
    assert load(None, {"GPULANE_PEERING_PRIORITY": "3"}).peering.priority == 3
    both = {"GPULANE_PEERING_PRIORITY": "3", "GPULANE_OPERATOR_PEERING_PRIORITY": "4"}
    assert load(None, both).peering.priority == 4


def test_kubernetes_service_link_variables_are_ignored() -> None:
    # a Service named <release>-gpulane-operator-metrics injects GPULANE_OPERATOR_METRICS_SERVICE_HOST & co.
    env = {"GPULANE_OPERATOR_METRICS_SERVICE_HOST": "10.0.0.1", "GPULANE_OPERATOR_METRICS_PORT_8080_TCP": "tcp://x"}
    assert load(None, env).metrics.port == 8080


def test_a_paused_replica_stops_scheduling_within_half_the_handover() -> None:
    assert load("peering: {handover_s: 3.0}").peering.live_s() == 1.5
    assert load("peering: {handover_s: 10.0}").peering.live_s() == 2.0
    standalone = load("peering: {standalone: true, handover_s: 0}")  # no peers: the handover is moot
    assert standalone.peering.live_s() == 2.0
