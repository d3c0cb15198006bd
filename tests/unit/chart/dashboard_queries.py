"""Reading the shipped Grafana dashboards as data: their panel queries, variables and metric names.

Shared by the static checks (tests/unit/chart/test_dashboards.py) and the live check against a real
Prometheus (tests/integration/test_dashboards_live.py), so that both look at exactly the same queries
and substitute Grafana's variables the same way (control-plane.md §6).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS_DIR = ROOT / "charts" / "gpulane" / "dashboards"
CONTRACTS = ROOT / "docs" / "contracts.md"

# Grafana's built-in interval variables, replaced by fixed durations before parsing or evaluating.
BUILTINS = {"__rate_interval": "1m", "__interval": "5s", "__range": "1h"}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One target of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


@dataclass(frozen=True, slots=True)
class VariableQuery:
    """A `label_values(selector, label)` template variable."""

    dashboard: str
    name: str
    selector: str | None
    label: str


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON shipped with the chart, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """All panels, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(name: str, dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(name, str(panel.get("title", "")), str(target.get("refId", "")), str(target["expr"]))
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_names(dashboard: Mapping[str, Any]) -> set[str]:
    return {str(v["name"]) for v in dashboard.get("templating", {}).get("list", [])}


def variable_queries(name: str, dashboard: Mapping[str, Any]) -> list[VariableQuery]:
    """The query variables; anything other than label_values() raises, so no variable goes unchecked."""
    found: list[VariableQuery] = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], Mapping) else var["query"]
        match = _LABEL_VALUES.match(str(query).strip())
        if match is None:
            raise ValueError(f"{name}: variable {var['name']}: unsupported query {query!r}")
        found.append(VariableQuery(name, str(var["name"]), match["selector"], match["label"]))
    return found


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana's built-in and template variables; KeyError names any variable left unknown."""

    def repl(match: re.Match[str]) -> str:
        var = match.group(1) or match.group(2) or match.group(3)
        if var in BUILTINS:
            return BUILTINS[var]
        if var not in values:
            raise KeyError(f"unknown variable ${var} in {expr!r}")
        return values[var]

    return _VAR.sub(repl, expr)


def template_vars_outside_regex_matchers(expr: str, names: set[str]) -> list[str]:
    """Template variables used other than as `label=~"...$var..."` (a multi-value or `.*` would break them)."""
    bad: list[str] = []
    for match in _VAR.finditer(expr):
        var = match.group(1) or match.group(2) or match.group(3)
        if var not in names:
            continue
        before = expr[: match.start()]
        quote = before.rfind('"')
        if quote < 2 or before[quote - 2 : quote] != "=~":
            bad.append(var)
    return bad


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (after substitution)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(str(node.name))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def contract_metrics(text: str | None = None) -> dict[str, bool]:
    """Metric names in docs/contracts.md's Metrics section, mapped to whether each is a histogram."""
    text = CONTRACTS.read_text() if text is None else text
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    found: dict[str, bool] = {}
    for match in re.finditer(r"`((?:gpulane|DCGM)_\w+)`(\s*\(([^)]*)\))?", section):
        found[match.group(1)] = "histogram" in (match.group(3) or "")
    return found


def allowed_series(metrics: Mapping[str, bool]) -> set[str]:
    """Series names a query may select: each metric, and a histogram's _bucket/_sum/_count."""
    allowed = set(metrics)
    for name, is_histogram in metrics.items():
        if is_histogram:
            allowed.update(name + suffix for suffix in _HISTOGRAM_SUFFIXES)
    return allowed
