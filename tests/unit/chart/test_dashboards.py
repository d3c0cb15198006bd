"""Static checks of the Grafana dashboards: Grafana's schema, PromQL syntax, and only contract metric names.

No Grafana server can be run here (control-plane.md §6), so structure is checked with
grafana-foundation-sdk: decode, re-encode, and diff, since unknown keys vanish in the round trip.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import dashboard_queries
import promql_parser
import pytest
from dashboard_queries import (
    allowed_series,
    contract_metrics,
    iter_panels,
    load_dashboards,
    metric_names,
    panel_queries,
    substitute,
    template_vars_outside_regex_matchers,
    variable_names,
    variable_queries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

DASHBOARDS = load_dashboards()
EXPECTED = {"gpulane-cluster-overview.json", "gpulane-node-gpu.json", "gpulane-job.json"}


def _round_trip(dashboard: dict[str, Any]) -> Any:
    register_default_plugins()  # decode targets as Prometheus queries and options per panel type
    return json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(copy.deepcopy(dashboard))))


def _differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Keys lost and values changed between the dashboard and its SDK round trip."""
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return [f"{path}: became {type(after).__name__}"]
        out: list[str] = []
        for key, value in before.items():
            if key not in after:
                out.append(f"{path}/{key}: lost (unknown to Grafana's schema)")
            else:
                out.extend(_differences(value, after[key], f"{path}/{key}"))
        return out
    if isinstance(before, list):
        if not isinstance(after, list) or len(before) != len(after):
            return [f"{path}: list changed"]
        return [d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in _differences(b, a, f"{path}[{i}]")]
    return [] if before == after else [f"{path}: {before!r} became {after!r}"]


def test_the_three_dashboards_ship() -> None:
    assert set(DASHBOARDS) == EXPECTED


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_survives_the_sdk_round_trip(name: str) -> None:
    assert _differences(DASHBOARDS[name], _round_trip(DASHBOARDS[name])) == []


def test_round_trip_detects_an_unknown_key() -> None:
    broken = copy.deepcopy(DASHBOARDS["gpulane-node-gpu.json"])
    broken["panels"][1]["fieldConfig"]["defaults"]["unitt"] = "bytes"
    broken["panels"][1]["targets"][0]["exprr"] = "up"
    lost = _differences(broken, _round_trip(broken))
    assert any("unitt" in d for d in lost) and any("exprr" in d for d in lost), lost


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_identity_and_variables(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["uid"].startswith("gpulane-") and len(dashboard["uid"]) <= 40
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in iter_panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel.get("targets"), f"{panel['title']} has no query"
    ids = [p["id"] for p in iter_panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_node_dashboards_offer_hostname_and_gpu() -> None:
    assert {"datasource", "Hostname", "gpu"} <= variable_names(DASHBOARDS["gpulane-node-gpu.json"])
    assert {"datasource", "Hostname"} <= variable_names(DASHBOARDS["gpulane-cluster-overview.json"])


def _queries() -> list[tuple[str, str]]:
    return [(str(q), q.expr) for name, d in DASHBOARDS.items() for q in panel_queries(name, d)]


def _dashboard_of(query_id: str) -> dict[str, Any]:
    return DASHBOARDS[query_id.split(" / ", 1)[0]]


@pytest.mark.parametrize(("query_id", "expr"), _queries())
def test_panel_query_parses(query_id: str, expr: str) -> None:
    names = variable_names(_dashboard_of(query_id))
    assert template_vars_outside_regex_matchers(expr, names) == [], "template variables must sit in =~ matchers"
    promql_parser.parse(substitute(expr, {n: ".*" for n in names}))


def test_a_raw_variable_fails_to_parse() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse('sum(rate(gpulane_lane_turns_total{Hostname=~"$Hostname"}[$__rate_interval]))')


@pytest.mark.parametrize(("query_id", "expr"), _queries())
def test_panel_query_uses_only_contract_metrics(query_id: str, expr: str) -> None:
    names = variable_names(_dashboard_of(query_id))
    used = metric_names(substitute(expr, {n: ".*" for n in names}))
    assert used, "a panel query must select at least one metric"
    assert used <= allowed_series(contract_metrics()), used - allowed_series(contract_metrics())


def test_variable_queries_parse_and_use_contract_metrics() -> None:
    allowed = allowed_series(contract_metrics())
    for name, dashboard in DASHBOARDS.items():
        names = variable_names(dashboard)
        for var in variable_queries(name, dashboard):
            assert var.selector is not None, f"{name}: {var.name} must name a metric"
            assert template_vars_outside_regex_matchers(var.selector, names) == []
            assert metric_names(substitute(var.selector, {n: ".*" for n in names})) <= allowed


def test_contract_parser_sees_the_histograms() -> None:
    metrics = contract_metrics()
    assert metrics["gpulane_placement_latency_seconds"] is True
    assert metrics["gpulane_lane_turn_wait_seconds"] is True
    assert metrics["gpulane_queue_length"] is False
    assert "gpulane_queue_length_bucket" not in allowed_series(metrics)


def test_substitute_rejects_unknown_variables() -> None:
    assert substitute("rate(x[$__rate_interval])", {}) == "rate(x[1m])"
    assert substitute('x{a=~"${node}"}', {"node": "n1"}) == 'x{a=~"n1"}'
    with pytest.raises(KeyError):
        substitute('x{a=~"$nope"}', {})


def _real_series() -> set[str]:
    """Series names the operator's and the agent's code actually export (not only the contract)."""
    names = pytest.importorskip("gpulane_agent.exporter.names")
    turns = pytest.importorskip("gpulane_agent.coordinator.collector")
    operator_metrics = pytest.importorskip("gpulane_operator.metrics")
    series = set(names.ALL_METRICS)
    series |= {turns.TURNS_TOTAL, turns.PREFETCH_SIGNALS_TOTAL, turns.TURN_TIMEOUTS_TOTAL, turns.LANE_WAITERS}
    for histogram in (turns.TURN_WAIT_SECONDS, turns.TURN_HOLD_SECONDS):
        series |= {histogram + s for s in ("_bucket", "_sum", "_count")}
    for family in operator_metrics.OperatorMetrics().registry.collect():
        if family.type == "counter":
            series.add(family.name + "_total")
        elif family.type == "histogram":
            series |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            series.add(family.name)
    return series


def test_every_dashboard_metric_is_exported_by_the_real_code() -> None:
    real = _real_series()
    used: set[str] = set()
    for name, dashboard in DASHBOARDS.items():
        names = variable_names(dashboard)
        for query in panel_queries(name, dashboard):
            used |= metric_names(substitute(query.expr, {n: ".*" for n in names}))
    assert "gpulane_placements_total" in real and "gpulane_lane_turn_wait_seconds_bucket" in real
    assert used - real == set()


def test_docs_table_lists_every_panel() -> None:
    docs = (dashboard_queries.ROOT / "docs" / "dashboards.md").read_text()
    for name, dashboard in DASHBOARDS.items():
        assert f"`{name}`" in docs
        for panel in iter_panels(dashboard):
            if panel["type"] != "row":
                assert f"| {panel['title']} |" in docs, f"{name}: {panel['title']}"
