"""Static checks of the chart's alerting rules: PromQL syntax, metric names, and the fields alerts need."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from dashboard_queries import allowed_series, contract_metrics, metric_names

RULES_FILE = Path(__file__).resolve().parents[3] / "charts" / "gpulane" / "rules" / "gpulane-alerts.yaml"
RULES: list[dict[str, Any]] = [r for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]]


def test_alert_names_are_unique_and_prefixed() -> None:
    names = [r["alert"] for r in RULES]
    assert len(names) == len(set(names)) >= 6
    assert all(n.startswith("Gpulane") for n in names)


@pytest.mark.parametrize("rule", RULES, ids=[r["alert"] for r in RULES])
def test_rule_is_complete_and_uses_contract_metrics(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    promql_parser.parse(expr)
    used = metric_names(expr)
    assert used and used <= allowed_series(contract_metrics()), used
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", rule["for"])
