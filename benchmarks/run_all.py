"""Run every benchmark module (benchmarks/bench_*.py) and write one Markdown report.

Each module exposes ``run(quick: bool) -> str`` returning a Markdown section with measured numbers.
Ratios against baselines are measured in the same run; nothing here is copied from elsewhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--only", default="", help="comma-separated module names (bench_core, ...)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke runs")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    sections: list[str] = []
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        print(f"== {path.stem}", flush=True)
        started = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            sections.append(module.run(args.quick).strip())
        except Exception:  # a broken benchmark is reported, the others still run
            failed += 1
            sections.append(f"## {path.stem}\n\nFAILED:\n\n```\n{traceback.format_exc()}\n```")
        print(f"   {time.perf_counter() - started:.1f} s", flush=True)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        "# gpulane benchmarks\n\n"
        f"Measured by `make bench` on {now}.\n\nMachine: {machine()}.\n\n"
        "Every figure below was measured in this run; ratios compare against baselines run in the same process.\n"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
