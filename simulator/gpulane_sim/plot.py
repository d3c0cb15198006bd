"""Gantt-style PNG of a simulation: per policy, each GPU's lanes computing and its copy engine moving.

matplotlib is imported inside the function (Agg backend), so the simulator works without it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from gpulane_core.model import JobId

from gpulane_sim.files import write_atomically
from gpulane_sim.result import Segment, SimResult

RowKey = tuple[str, int, str, str]  # node, GPU index, lane (or "copy"), kind


def _row_key(seg: Segment) -> RowKey:
    node, gpu, lane = seg.lane
    return (node, gpu, "copy" if seg.kind == "transfer" else lane, seg.kind)


def _rows(result: SimResult) -> list[tuple[RowKey, str]]:
    """Every row with activity and its label, GPUs in order, each GPU's copy engine after its lanes."""
    keys = sorted(
        {_row_key(s) for s in result.segments}, key=lambda r: (r[0], r[1], r[3] == "transfer", r[2])
    )
    labels = []
    for node, gpu, lane, kind in keys:
        what = "copy engine" if kind == "transfer" else ("compute" if lane == "gpu" else lane)
        labels.append(((node, gpu, lane, kind), f"{node}/gpu{gpu} {what}"))
    return labels


def write_gantt(results: Mapping[str, SimResult], path: Path) -> None:
    """Write the chart atomically (temp file, then rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = list(results)
    rows_of = {n: _rows(results[n]) for n in names}  # each walks every segment: once per result
    heights = [max(1, len(rows_of[n])) for n in names]
    fig, axes = plt.subplots(
        len(names),
        1,
        figsize=(14, 1.2 + 0.45 * sum(heights) + 0.6 * len(names)),
        gridspec_kw={"height_ratios": heights},
        sharex=True,
        squeeze=False,
    )
    cmap = plt.get_cmap("tab20")
    jobs = sorted({seg.job for r in results.values() for seg in r.segments})
    color = {j: cmap(i % 20) for i, j in enumerate(jobs)}
    for ax, name in zip(axes[:, 0], names, strict=True):
        result = results[name]
        rows = rows_of[name]
        index = {key: i for i, (key, _) in enumerate(rows)}
        # One artist per (row, job, kind): a long trace has millions of segments.
        spans: dict[tuple[int, JobId, str], list[tuple[float, float]]] = defaultdict(list)
        for seg in result.segments:
            spans[(index[_row_key(seg)], seg.job, seg.kind)].append((seg.start_s, seg.end_s - seg.start_s))
        for (y, job, kind), bars in spans.items():
            ax.broken_barh(
                bars,
                (y - 0.35, 0.7),
                facecolors=color[job],
                alpha=0.45 if kind == "transfer" else 0.95,
                hatch="///" if kind == "transfer" else None,
                edgecolor="black",
                linewidth=0.2,
            )
        ax.set_yticks(range(len(rows)), [label for _, label in rows], fontsize=8)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        s = result.summary()
        ax.set_title(
            f"{name}: makespan {s['makespan_s']:.1f} s, avg JCT {s['avg_jct_s']:.1f} s, "
            f"GPU util {100 * s['gpu_utilization']:.0f}%",
            fontsize=9,
            loc="left",
        )
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time (s); white = idle")
    fig.legend(
        handles=[
            Patch(facecolor="grey", label="compute (colour = job)"),
            Patch(facecolor="grey", alpha=0.45, hatch="///", label="working-set transfer"),
        ],
        loc="upper right",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
