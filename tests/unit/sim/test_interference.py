"""Co-location interference calibrated on Lucid's measured pairs (the data stays in the shared folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_core.model import Job, JobId
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.interference import CalibrationError, fit_lucid
from gpulane_sim.policies import SimPolicy

HEADER = "model1,speed1,model2,speed2,gpu_util\n"


def test_fit_is_the_mean_speed_with_its_spread_as_the_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "a,0.8,b,1.0,40\na,0.6,b,0.8,80\n")
    fit = fit_lucid(path)
    assert fit.pairs == 2 and fit.mean_speed == pytest.approx(0.8)
    assert fit.slowdown == pytest.approx(0.25)  # speed 0.8 = 1 / (1 + 0.25)
    assert fit.rmse == pytest.approx((0.08 / 4) ** 0.5) and fit.mae == pytest.approx(0.1)
    assert 0 < fit.util_r2 <= 1 and fit.util_rmse < fit.rmse  # utilisation explains part of it here
    with pytest.raises(CalibrationError, match="speed1"):
        (tmp_path / "bad.csv").write_text("model1,gpu_util\nx,1\n")
        fit_lucid(tmp_path / "bad.csv")


def test_calibrated_slowdown_stretches_concurrent_iterations_as_fitted(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "a,0.8,b,0.8,50\n")
    s = fit_lucid(path).slowdown
    jobs = [Job(JobId(n), 100, 100, iteration_s=1.0, iterations=10) for n in "ab"]
    result = simulate(jobs, SimPolicy.PACK, SimConfig(gpus=1, prefetch=False, colocation_slowdown=s))
    # Both lanes compute side by side for the whole run: each iteration takes 1.25 s.
    assert result.makespan_s == pytest.approx(12.5)


def test_lucid_fit_on_the_measured_pairs(shared_data: Path) -> None:
    fit = fit_lucid(shared_data / "lucid_colocate_info.csv")
    assert fit.pairs == 1388
    assert fit.slowdown == pytest.approx(0.0677, abs=5e-4)
    assert fit.rmse == pytest.approx(0.125, abs=1e-3) and fit.mae == pytest.approx(0.091, abs=1e-3)
    assert fit.util_r2 == pytest.approx(0.237, abs=1e-3)
