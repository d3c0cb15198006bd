"""Salus' long-running-trace experiment, approximated (docs/salus-reproduction.md).

Every row of Salus' workloads.csv once (99 jobs), seeded random order, Poisson submissions over a
fraction of the total solo work, one 14 GiB GPU, 16 GB/s, prefetch on; avg JCT and makespan in
minutes next to the paper's. Needs the shared data (``$GPULANE_SHARED_DATA``); reports why it
skipped otherwise. Run alone: ``python benchmarks/bench_salus.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.place.curve import shared_data_dir
from gpulane_sim.policies import SimPolicy
from gpulane_sim.salus_trace import long_running_trace
from gpulane_sim.workload import load_workload

PAPER = {"fifo": (170.6, 303.4), "srtf": (53.4, 306.0), "pack": (145.5, 287.4), "fair": (96.6, 301.6)}
POLICIES = (SimPolicy.FIFO, SimPolicy.SRTF, SimPolicy.PACK, SimPolicy.FAIR, SimPolicy.GPULANE)


def run(quick: bool) -> str:
    path = shared_data_dir() / "salus_workloads.csv"
    lines = ["## Salus long-running trace (approximation)", ""]
    if not path.is_file():
        return "\n".join([*lines, f"Skipped: {path} not found (set GPULANE_SHARED_DATA)."])
    workloads = load_workload(path, "salus").jobs
    fractions = (0.25,) if quick else (0.05, 0.25, 0.5)
    config = SimConfig(gpus=1, gpu_memory_mib=14 * 1024)
    lines += [
        f"{len(workloads)} jobs (every workloads.csv row once, seed 0 order), 1 GPU x 14 GiB; submissions are",
        "Poisson over the given fraction of the total solo work (567.7 min). Minutes; paper values from",
        "papers.md §1.3 (from the paper's slides, unverified).",
        "",
        "| submissions over | policy | avg JCT (min) | makespan (min) | avg JCT vs fifo | paper avg JCT | paper makespan | paper vs fifo | CPU (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fraction in fractions:
        jobs = long_running_trace(workloads, seed=0, span_fraction=fraction)
        fifo = 0.0
        for policy in POLICIES:
            cpu = time.process_time()
            s = simulate(jobs, policy, config).summary()
            cpu = time.process_time() - cpu
            jct, span = s["avg_jct_s"] / 60, s["makespan_s"] / 60
            fifo = fifo or jct
            paper = PAPER.get(policy.value)
            theirs = f"{paper[0]:.1f} | {paper[1]:.1f} | {PAPER['fifo'][0] / paper[0]:.2f}x" if paper else "- | - | -"
            lines.append(
                f"| {fraction:.0%} of the work | {policy.value} | {jct:.1f} | {span:.1f} | {fifo / jct:.2f}x | {theirs} | {cpu:.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick))
