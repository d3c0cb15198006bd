"""Gantt-style PNG of a simulation: per policy, each GPU's lanes computing and its copy engine moving.

matplotlib is imported inside the function (Agg backend), so the simulator works without it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from gpulane_sim.result import SimResult


def _rows(result: SimResult) -> list[tuple[str, str, int, str]]:
    """(row label, kind, GPU index, lane) for every row with activity, GPUs in order."""
    rows: set[tuple[str, int, str, str]] = set()
    for seg in result.segments:
        node, gpu, lane = seg.lane
        row_lane = "copy" if seg.kind == "transfer" else lane
        rows.add((node, gpu, row_lane, seg.kind))
    ordered = sorted(rows, key=lambda r: (r[0], r[1], r[3] == "transfer", r[2]))
    return [
        (f"{n}/gpu{g} {'copy engine' if k == 'transfer' else ('compute' if ln == 'gpu' else ln)}", k, g, ln)
        for n, g, ln, k in ordered
    ]


def write_gantt(results: Mapping[str, SimResult], path: Path) -> None:
    """Write the chart atomically (temp file, then rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = list(results)
    heights = [max(1, len(_rows(results[n]))) for n in names]
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
        rows = _rows(result)
        index = {(r[2], "copy" if r[1] == "transfer" else r[3], r[1]): i for i, r in enumerate(rows)}
        for seg in result.segments:
            _, gpu, lane = seg.lane
            y = index[(gpu, "copy" if seg.kind == "transfer" else lane, seg.kind)]
            ax.barh(
                y,
                seg.end_s - seg.start_s,
                left=seg.start_s,
                height=0.7,
                color=color[seg.job],
                alpha=0.45 if seg.kind == "transfer" else 0.95,
                hatch="///" if seg.kind == "transfer" else None,
                edgecolor="black",
                linewidth=0.2,
            )
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gantt-", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
