"""Fixtures for simulator tests: where the shared read-only data lives."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_sim.place.curve import shared_data_dir

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set GPULANE_SHARED_DATA)")
    return path


@pytest.fixture
def demo_csv() -> Path:
    return REPO / "examples" / "workloads" / "demo.csv"
