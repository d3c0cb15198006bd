"""Guards the repository's standing layout rules."""

from __future__ import annotations

import filecmp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENT_DIRS = ["core", "operator", "node_agent", "simulator", "client", "devtools"]


def test_component_folders_are_not_packages() -> None:
    # A package named `operator` would shadow the standard library module.
    for folder in COMPONENT_DIRS:
        assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/__init__.py must not exist"


def test_each_component_folder_holds_one_typed_package() -> None:
    for folder in COMPONENT_DIRS:
        packages = [p for p in (ROOT / folder).iterdir() if (p / "__init__.py").exists()]
        assert len(packages) == 1, f"{folder} holds {packages}"
        assert (packages[0] / "py.typed").exists(), f"{packages[0]} lacks py.typed"


def test_chart_crds_are_identical_to_source_of_truth() -> None:
    source = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (ROOT / "charts/gpulane/crds").glob("*.yaml"))
    assert source, "crds/ holds no CRD"
    assert source == chart
    for name in source:
        assert filecmp.cmp(ROOT / "crds" / name, ROOT / "charts/gpulane/crds" / name, shallow=False), name
