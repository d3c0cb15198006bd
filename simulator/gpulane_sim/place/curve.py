"""Allocation curves as the FGD artifact reports them, and the published curves to compare with.

The artifact (``experiments/analysis/merge_alloc_discrete.py``) rounds each arrival's requested GPU
share to a whole percent of cluster capacity and averages the allocation ratio (in percent, rounded
to 2 decimals) of the arrivals in that bucket, for buckets 0..130; an empty bucket borrows the
arrivals of its neighbours (+-1). We do the same, so our curves and theirs line up column by column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PERCENTS = tuple(range(0, 131))


def discrete_curve(
    arrived_milli: Sequence[int], allocated_milli: Sequence[int], capacity_milli: int
) -> list[tuple[int, float]]:
    """[(arrived percent, allocation ratio 0..1)] for each percent 0..130 that has data."""
    if capacity_milli <= 0:
        raise ValueError(f"capacity_milli: must be positive, got {capacity_milli}")
    buckets: dict[int, list[float]] = {}
    for arrived, allocated in zip(arrived_milli, allocated_milli, strict=True):
        percent = round(arrived * 100 / capacity_milli)  # Python's round, as pandas' apply(round)
        buckets.setdefault(percent, []).append(round(allocated * 100 / capacity_milli, 2))
    curve: list[tuple[int, float]] = []
    for x in PERCENTS:
        values = buckets.get(x)
        if not values:
            values = [v for k in (x - 1, x, x + 1) for v in buckets.get(k, [])]
            if not values:
                continue
        curve.append((x, round(sum(values) / len(values), 2) / 100))
    return curve


def mean_curves(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Point-wise mean over the percents every curve has."""
    if not curves:
        return []
    common = set.intersection(*({x for x, _ in c} for c in curves))
    by_curve = [dict(c) for c in curves]
    return [(x, sum(c[x] for c in by_curve) / len(by_curve)) for x in sorted(common)]


@dataclass(frozen=True, slots=True)
class PublishedCurve:
    workload: str
    policy: str  # the artifact's name, e.g. 06-FGD
    seed: int
    ratios: dict[int, float]  # arrived percent -> allocation ratio 0..1


def shared_data_dir(repo_root: Path | None = None) -> Path:
    """$GPULANE_SHARED_DATA, else the ``shared/data`` folder beside the repository."""
    env = os.environ.get("GPULANE_SHARED_DATA")
    if env:
        return Path(env)
    root = repo_root or Path(__file__).resolve().parents[3]
    return root.parent / "shared" / "data"


def load_published(path: Path, workload: str) -> list[PublishedCurve]:
    """The published curves of one workload (e.g. ``openb_pod_list_default``); empty if none."""
    curves: list[PublishedCurve] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("workload") != workload:
                continue
            ratios = {int(k): float(v) / 100 for k, v in row.items() if k and k.isdigit() and v not in ("", None)}
            curves.append(PublishedCurve(workload, row["sc_policy"], int(row["seed"]), ratios))
    return curves


def published_final(curves: Sequence[PublishedCurve], policy: str, at: int = 130) -> float | None:
    """Mean over seeds of the published ratio at ``at`` percent for one policy (None if absent)."""
    values = [c.ratios[at] for c in curves if c.policy == policy and at in c.ratios]
    return sum(values) / len(values) if values else None


def published_mean_curve(curves: Sequence[PublishedCurve], policy: str) -> dict[int, float]:
    """Mean over seeds of the published curve of one policy, at the percents every seed has."""
    return dict(mean_curves([list(c.ratios.items()) for c in curves if c.policy == policy]))


def max_gap(ours: Sequence[tuple[int, float]], published: dict[int, float]) -> tuple[float, int] | None:
    """Largest |ours - published| over the shared percents, and where; None if none are shared."""
    gaps = [(abs(y - published[x]), x) for x, y in ours if x in published]
    return max(gaps) if gaps else None
