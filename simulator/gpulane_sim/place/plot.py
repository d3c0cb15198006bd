"""Allocation curves as a PNG (matplotlib's Agg backend, imported only when a plot is asked for)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def write_plot(path: Path, curves: Mapping[str, Sequence[tuple[int, float]]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for name, curve in curves.items():
            xs = [x for x, _ in curve]
            ys = [100 * y for _, y in curve]
            ax.plot(xs, ys, label=name, linewidth=1.4)
        ax.plot([0, 100], [0, 100], color="grey", linewidth=0.6, linestyle=":")
        ax.set_xlabel("arrived GPU request (% of cluster GPU capacity)")
        ax.set_ylabel("GPU allocation ratio (%)")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 130)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120, format="png")
    finally:
        plt.close(fig)
