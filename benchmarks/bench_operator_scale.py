"""The operator at cluster scale: 5,000 GPUShareJobs on 1,000 kwok nodes x 8 GPUs, kube-scheduler beside it.

The same harness as bench_operator (real kube-apiserver + etcd + kwok, `gpulane operator --standalone`
in its own process, 8 client threads, latency from the create response to the watch event showing the
pod bound), ten times larger. Also reported: each scheduler's peak resident memory (VmHWM) and jobs whose
watch showed more than one pod (placed twice); a job never bound fails the bench. `--quick`: 500 on 100.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _bench_operator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_operator", HERE / "bench_operator.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(quick: bool) -> str:
    bench = _bench_operator()
    jobs, nodes, gpus = (500, 100, 8) if quick else (5000, 1000, 8)
    with bench.bench_plane("bench-operator-scale-") as (plane, workdir):
        r, _ = bench.measure(plane, jobs, nodes, gpus, workdir)
        k = bench.measure_kube_scheduler(plane, jobs, workdir)
    return "\n".join(
        [
            "## Operator at scale: 5,000 jobs on 1,000 nodes",
            "",
            f"{jobs} GPUShareJobs (1Gi + 6Gi) on {nodes} kwok nodes x {gpus} GPUs x 16Gi, measured as in the section",
            "above (same harness, same peer run after it on the same nodes with the operator stopped). Peak RSS:",
            "VmHWM of the scheduler's process. Placed twice: jobs for which the watch saw more than one pod. No job",
            "was lost: the bench fails unless every job's pod is bound.",
            f"One machine ({os.cpu_count()} cores; 1-minute load average {os.getloadavg()[0]:.1f} at the end).",
            "",
            "| scheduler | jobs | nodes x GPUs | p50 latency (s) | p99 latency (s) | max (s) | jobs bound/s | wall (s) | scheduler CPU (s) | peak RSS (MiB) | placed twice |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| gpulane | {jobs} | {nodes} x {gpus} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['rate']:.1f} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss']:.0f} | {r['twice']:.0f} |",
            f"| kube-scheduler | {jobs} | {nodes} x {gpus} | {k['p50']:.2f} | {k['p99']:.2f} | {k['max']:.2f} | {k['rate']:.1f} | {k['wall']:.1f} | {k['cpu']:.1f} | {k['rss']:.0f} | |",
            f"| gpulane / kube-scheduler | | | {r['p50'] / k['p50']:.2f}x | {r['p99'] / k['p99']:.2f}x | | {r['rate'] / k['rate']:.2f}x | | | {r['rss'] / k['rss']:.2f}x | |",
        ]
    )


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
