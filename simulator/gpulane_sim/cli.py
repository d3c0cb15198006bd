"""`gpulane simulate`: run policies over a workload, print them side by side, write JSON and a Gantt PNG.

Contract: exit 0 on success; exit 2 with one line ``gpulane simulate: error: <file:line: field: reason>``
on bad input, before anything is written. Outputs are written to a temporary file and renamed, so a
failed run never leaves half a file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

EXIT_USAGE = 2

# (JSON key, column label, format) in table order.
_ROWS = (
    ("makespan_s", "makespan (s)", "{:.1f}"),
    ("avg_jct_s", "avg JCT (s)", "{:.1f}"),
    ("p95_jct_s", "p95 JCT (s)", "{:.1f}"),
    ("avg_queueing_s", "avg queueing (s)", "{:.1f}"),
    ("gpu_utilization", "GPU utilization", "{:.1%}"),
    ("lane_memory_utilization", "lane memory util.", "{:.1%}"),
    ("bytes_moved", "moved (GiB)", "gib"),
    ("transfers", "transfers", "{:d}"),
)


def register_simulate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="trace-driven simulation of ordering policies on shared GPUs",
        description="Simulate a workload under several policies and compare them.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("workload", type=Path, help="native CSV/YAML, Salus workloads.csv or Tiresias 60_job.csv")
    p.add_argument("--policy", default="fifo,srtf,pack,fair,weight,gpulane,ga", help="comma-separated policies")
    p.add_argument("--format", default="auto", choices=["auto", "native", "yaml", "salus", "tiresias"])
    p.add_argument("--gpus", default=None, help="number of GPUs (default 2)")
    p.add_argument("--gpus-per-node", default=None, help="GPUs per node (default 8)")
    p.add_argument("--gpu-memory", default=None, help="memory per GPU, e.g. 16Gi")
    p.add_argument("--bandwidth", default=None, help="host-to-GPU bandwidth, e.g. 16GB/s")
    p.add_argument(
        "--prefetch", default=None, choices=["on", "off"], help="prefetch the next turn (default on)"
    )
    p.add_argument("--seed", default=None, help="seed for the GA (default 0)")
    p.add_argument(
        "--placement",
        default=None,
        help="placement policy for every policy (default auto: spread when a GPU is one lane, else gpulane)",
    )
    p.add_argument("--colocation-slowdown", default=None, help="factor per extra co-running lane, or 'lucid'")
    p.add_argument("--window", dest="window_s", default=None, help="weight policy window in s (default 30)")
    p.add_argument("--ga-generations", default=None, help="GA generations (default 15)")
    p.add_argument("--ga-population", default=None, help="GA population (default 16)")
    p.add_argument("--ga-time-budget", dest="ga_time_budget_s", default=None, help="GA wall-time bound in s (default 60)")
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (flags > env > file; env GPULANE_SIM_CONFIG)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any setting below by its key (repeatable)")
    p.add_argument("--json", type=Path, default=None, help="write metrics per policy as JSON")
    p.add_argument("--plot", type=Path, default=None, help="write a Gantt PNG per policy and GPU")
    p.set_defaults(func=run_simulate)


def _settings_help() -> str:
    from gpulane_core.settings import describe

    from gpulane_sim.settings import SimSettings

    return describe(SimSettings, "sim")


def _data_dir() -> Path:
    return Path(os.environ.get("GPULANE_SHARED_DATA", str(Path.cwd().parent / "shared" / "data")))


class _ProgressBar:
    """Progress on stderr once a run takes longer than two seconds.

    On a terminal: one redrawn bar. Elsewhere (CI logs, pipes) a redrawn bar would flood the log with
    carriage returns, so it prints one plain line per 10 % step instead.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.shown = False
        self.last = 0.0
        self.last_step = -1

    def __call__(self, what: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.started <= 2.0:
            return
        if not self.tty:
            step = int(fraction * 10)
            if step != self.last_step:
                self.last_step = step
                self.stream.write(f"progress: {step * 10:3d}% {what}\n")
                self.stream.flush()
            return
        if now - self.last < 0.2:
            return
        self.last = now
        filled = int(30 * fraction)
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {what:<12}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def format_table(summaries: Mapping[str, Mapping[str, float | int]]) -> str:
    names = list(summaries)
    width = max(10, *(len(n) + 2 for n in names))
    lines = [f"{'':<20}" + "".join(f"{n:>{width}}" for n in names)]
    for key, label, fmt in _ROWS:
        cells = []
        for n in names:
            value = summaries[n][key]
            text = f"{value / 2**30:.2f}" if fmt == "gib" else fmt.format(value)
            cells.append(f"{text:>{width}}")
        lines.append(f"{label:<20}" + "".join(cells))
    return "\n".join(lines)


def run_simulate(args: argparse.Namespace) -> int:
    from gpulane_core.settings import parse_assignments

    from gpulane_sim.check import check_fits
    from gpulane_sim.files import write_atomically
    from gpulane_sim.policies import parse_policies
    from gpulane_sim.runner import run_policies
    from gpulane_sim.settings import SettingsError, load_settings
    from gpulane_sim.workload import WorkloadError, load_workload

    named = {
        name: getattr(args, name)
        for name in (
            "gpus", "gpus_per_node", "gpu_memory", "bandwidth", "prefetch", "seed", "placement",
            "colocation_slowdown", "window_s", "ga_generations", "ga_population", "ga_time_budget_s",
        )
    }  # fmt: skip
    try:
        flags = {**parse_assignments(args.set), **{k: v for k, v in named.items() if v is not None}}
        policies = parse_policies(args.policy)
        config = load_settings(flags, file=args.config, data_dir=_data_dir())
        workload = load_workload(args.workload, args.format)
        check_fits(workload, config)
        from gpulane_core.registry import default_registry

        if config.placement != "auto":
            default_registry().profile(config.placement)
    except (ValueError, SettingsError, WorkloadError) as exc:
        print(f"gpulane simulate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.plot is not None:
        from dataclasses import replace

        config = replace(config, record_segments=True)
    bar = _ProgressBar(sys.stderr)
    try:
        results = run_policies(workload.jobs, policies, config, bar)
    finally:
        bar.close()
    summaries = {name: r.summary() for name, r in results.items()}
    print(
        f"{len(workload.jobs)} jobs from {workload.source} on {config.gpus} GPU(s) x "
        f"{config.gpu_memory_mib} MiB, prefetch {'on' if config.prefetch else 'off'}, "
        f"bandwidth {config.bandwidth_bytes_s / 1e9:g} GB/s, placement {config.placement}"
    )
    print(format_table(summaries))
    if args.json is not None:
        payload = {
            "workload": workload.source,
            "config": {
                "gpus": config.gpus, "gpu_memory_mib": config.gpu_memory_mib,
                "bandwidth_bytes_s": config.bandwidth_bytes_s, "prefetch": config.prefetch,
                "seed": config.seed, "placement": config.placement,
                "colocation_slowdown": config.colocation_slowdown,
            },
            "policies": summaries,
        }  # fmt: skip
        text = json.dumps(payload, indent=2) + "\n"
        write_atomically(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(f"metrics: {args.json}")
    if args.plot is not None:
        from gpulane_sim.plot import write_gantt

        write_gantt(results, args.plot)
        print(f"gantt: {args.plot}")
    return 0
