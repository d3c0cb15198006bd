"""The decision modules stay pure: no sockets, event loop, clock reads or Prometheus in them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "node_agent" / "gpulane_agent" / "coordinator"
PURE = ["machine.py", "lane.py", "metrics.py", "protocol.py", "settings.py"]
FORBIDDEN = {"asyncio", "socket", "time", "prometheus_client", "threading", "os", "gpulane_agent.coordinator.server"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_decision_module_performs_no_io(module: str) -> None:
    imported = _imports(PACKAGE / module)
    bad = {name for name in imported if name in FORBIDDEN or name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{module} imports {sorted(bad)}"
