"""The whole product on kind: images built and loaded, chart installed with fake GPUs, examples placed.

The work is in hack/kind-e2e.sh (also what .github/workflows/e2e.yaml and people run); this runs it and
requires its PASS line. Set GPULANE_E2E_KEEP=1 to keep the cluster for inspection.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "kind-e2e.sh"

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("kind_available")
def test_examples_are_placed_on_a_kind_cluster() -> None:
    run = subprocess.run([str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=3500, check=False)
    assert run.returncode == 0, f"hack/kind-e2e.sh failed ({run.returncode}):\n{run.stderr[-8000:]}"
    assert "PASS: every example placed as expected" in run.stderr


def test_the_script_is_valid_bash() -> None:
    # Runs everywhere (no Docker needed): a syntax error would otherwise surface only in CI.
    check = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
