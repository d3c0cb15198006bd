"""Summaries of placement runs: per-policy means over seeds, the comparison table, the JSON document.

Pure functions over :class:`~gpulane_sim.place.experiment.RunResult`; writing files is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpulane_sim.place.curve import discrete_curve, max_gap, mean_curves
from gpulane_sim.place.experiment import RunResult


@dataclass(frozen=True, slots=True)
class PolicySummary:
    policy: str
    seeds: tuple[int, ...]
    finals: tuple[float, ...]  # final allocation ratio per seed, 0..1
    at_130: tuple[float, ...]  # the artifact's column-130 value per seed, 0..1
    curve: tuple[tuple[int, float], ...]  # mean over seeds
    failed: tuple[int, ...]
    seconds: tuple[float, ...]

    @property
    def final(self) -> float:
        return sum(self.finals) / len(self.finals)

    @property
    def final_130(self) -> float:
        return sum(self.at_130) / len(self.at_130) if self.at_130 else self.final


def summarize(results: Sequence[RunResult]) -> list[PolicySummary]:
    """One summary per policy, in the order policies first appear."""
    by_policy: dict[str, list[RunResult]] = {}
    for r in results:
        by_policy.setdefault(r.policy, []).append(r)
    summaries: list[PolicySummary] = []
    for policy, runs in by_policy.items():
        curves = [discrete_curve(r.arrived_milli, r.allocated_milli, r.capacity_milli) for r in runs]
        at_130 = tuple(dict(c)[130] for c in curves if c and c[-1][0] == 130)
        summaries.append(
            PolicySummary(
                policy,
                tuple(r.seed for r in runs),
                tuple(r.final_allocation_ratio for r in runs),
                at_130,
                tuple(mean_curves(curves)),
                tuple(r.failed for r in runs),
                tuple(r.seconds for r in runs),
            )
        )
    return summaries


def format_table(
    summaries: Sequence[PolicySummary],
    published: Mapping[str, float],
    published_curves: Mapping[str, dict[int, float]] | None = None,
) -> str:
    """A Markdown table: our final ratio (mean over seeds), its range, and the published figures.

    With ``published_curves``, the last column is the largest gap between our mean curve and the
    published mean curve over arrived percents 0..130, and where it is.
    """
    lines = [
        "| policy | final allocation (mean) | @130% arrived | min-max over seeds | failed pods | published @130 | diff "
        "| max curve gap | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        pub = published.get(s.policy)
        pub_text = f"{100 * pub:.2f}%" if pub is not None else "-"
        diff = f"{100 * (s.final_130 - pub):+.2f}" if pub is not None else "-"
        gap = max_gap(s.curve, (published_curves or {}).get(s.policy, {}))
        gap_text = f"{100 * gap[0]:.2f} @{gap[1]}%" if gap else "-"
        lines.append(
            f"| {s.policy} | {100 * s.final:.2f}% | {100 * s.final_130:.2f}% | "
            f"{100 * min(s.finals):.2f}-{100 * max(s.finals):.2f}% | {sum(s.failed) / len(s.failed):.0f} | "
            f"{pub_text} | {diff} | {gap_text} | {sum(s.seconds) / len(s.seconds):.1f} |"
        )
    return "\n".join(lines)


def json_document(summaries: Sequence[PolicySummary], meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "meta": dict(meta),
        "policies": {
            s.policy: {
                "final_allocation_ratio": s.final,
                "allocation_ratio_at_130": s.final_130,
                "seeds": list(s.seeds),
                "final_allocation_ratio_per_seed": list(s.finals),
                "failed_pods_per_seed": list(s.failed),
                "curve": [[x, y] for x, y in s.curve],
            }
            for s in summaries
        },
    }
