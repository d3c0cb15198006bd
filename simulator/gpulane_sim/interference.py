"""Interference between concurrent lanes, calibrated on Lucid's measured co-located pairs.

Model (the engine's ``colocation_slowdown``): an iteration that starts while ``k`` lanes compute on
its GPU takes ``iteration_s * (1 + s * (k - 1))``, so a job sharing the GPU with one other runs at
speed ``1 / (1 + s)`` of its solo speed. Calibration: Lucid's ``colocate_info.csv`` gives, for 1,388
pairs of single-GPU training jobs, each job's speed normalised to running alone. The least-squares
fit of a constant predicted speed is the mean speed, so ``s = 1 / mean - 1``. The fit error is the
spread of the measured speeds around that prediction (RMSE, mean absolute error); for reference, the
same errors of a line in the pair's measured GPU utilisation, which the simulator does not know per
job (so it cannot use that model) but which shows how much a richer model could explain.

The data is read from where it lies (``$GPULANE_SHARED_DATA``) and never copied into the project.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path


class CalibrationError(ValueError):
    """The measurement file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class LucidFit:
    pairs: int
    slowdown: float  # s: each extra co-running lane stretches an iteration by this fraction
    mean_speed: float  # the model's prediction, 1 / (1 + s)
    rmse: float  # of the measured per-job speeds around the prediction
    mae: float
    util_rmse: float  # the same for speed = a + b * pair GPU utilisation (reference only)
    util_r2: float


def fit_lucid(path: Path) -> LucidFit:
    speeds: list[float] = []
    utils: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                util = float(row["gpu_util"])
                for column in ("speed1", "speed2"):
                    speeds.append(float(row[column]))
                    utils.append(util)
    except (OSError, KeyError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot calibrate co-location: {exc}") from None
    if not speeds:
        raise CalibrationError(f"{path}: has no measurements")
    n = len(speeds)
    mean = sum(speeds) / n
    sq = sum((x - mean) ** 2 for x in speeds)
    mu = sum(utils) / n
    su = sum((u - mu) ** 2 for u in utils)
    b = sum((u - mu) * (x - mean) for u, x in zip(utils, speeds, strict=True)) / su if su > 0 else 0.0
    residual = sum((x - (mean + b * (u - mu))) ** 2 for u, x in zip(utils, speeds, strict=True))
    return LucidFit(
        pairs=n // 2,
        slowdown=max(0.0, 1.0 / mean - 1.0),
        mean_speed=mean,
        rmse=math.sqrt(sq / n),
        mae=sum(abs(x - mean) for x in speeds) / n,
        util_rmse=math.sqrt(residual / n),
        util_r2=1.0 - residual / sq if sq > 0 else 0.0,
    )
