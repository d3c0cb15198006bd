"""Node-agent benchmark: cost of a Prometheus scrape and of one enforcement tick on a busy fake node.

Sizes: 8 GPUs x 32 pods (4 pods per GPU in 2 lanes, one GPU process each) on the fake backend.
Measures, on this machine:
- collect+render: ``generate_latest`` over the agent's private registry (the exact work of a scrape,
  minus HTTP), wall p50/p99 and process CPU time per scrape;
- HTTP scrape: GET /metrics on the real exporter thread over loopback, wall p50/p99;
- enforcement tick: attribute processes to pods through a /proc fixture, judge, build the lane view.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from gpulane_agent.enforcement.attribution import ProcReader
from gpulane_agent.enforcement.enforcer import Enforcer
from gpulane_agent.exporter.collector import GpuCollector
from gpulane_agent.exporter.server import MetricsServer, make_registry
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.fake_spec import parse_spec
from gpulane_agent.health import HealthBoard
from gpulane_agent.kube.api import PodView
from gpulane_agent.lanes import NodeView, ViewHolder, lane_views, pod_lanes
from gpulane_agent.settings import EnforcementConfig
from gpulane_agent.stats import AgentStats
from gpulane_core import podcontract as ann
from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from prometheus_client import CollectorRegistry, generate_latest

NODE = "bench-node"
GPUS = 8
PODS = 32


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _node(proc_root: Path) -> tuple[FakeBackend, list[PodView]]:
    backend = FakeBackend(parse_spec({"version": "v1", "gpus": [{"model": "Fake-GPU-80G", "memory": "80Gi",
                                                                  "count": GPUS, "utilization": 0.6}]}, NODE))
    pods = []
    for i in range(PODS):
        gpu = backend.gpus()[i % GPUS]
        uid = f"{i:08x}-0000-4000-8000-000000000000"
        cid = f"{i:064x}"
        assignment = ann.Assignment(
            JobId(f"bench/job-{i}"), NodeName(NODE), (gpu.index,), (gpu.uuid,), LaneId(f"lane-{i // GPUS % 2}"),
            lane_size_mib=8192, persistent_mib=4096, ephemeral_mib=8192, charge_units=48,
            job_class=JobClass.GUARANTEED,
        )  # memory limit 12288 MiB, written as the operator writes it
        pods.append(PodView("bench", f"job-{i}", uid, NODE, "Running",
                            {**ann.to_annotations(assignment), ann.ALLOCATED: "true"},
                            {ann.LABEL_JOB: f"job-{i}"}, {cid: "main"}))
        (proc_root / str(1000 + i)).mkdir()
        (proc_root / str(1000 + i) / "cgroup").write_text(f"0::/kubepods/burstable/pod{uid}/{cid}\n")
        backend.register_process(gpu.index, 1000 + i, 4096 + 16 * i)
    return backend, pods


def _collect_loop(registry: CollectorRegistry, scrapes: int) -> tuple[list[float], float]:
    """Wall time of each ``generate_latest`` and the process CPU time per call."""
    wall: list[float] = []
    cpu0 = time.process_time()
    for _ in range(scrapes):
        t0 = time.perf_counter()
        generate_latest(registry)
        wall.append(time.perf_counter() - t0)
    return wall, (time.process_time() - cpu0) / scrapes


def run(quick: bool) -> str:
    scrapes = 200 if quick else 2000
    ticks = 50 if quick else 500
    with tempfile.TemporaryDirectory() as tmp:
        proc_root = Path(tmp)
        backend, pods = _node(proc_root)
        if len(pod_lanes(pods, NODE)) != PODS:  # a pod the agent cannot read would make the tick cheaper
            raise RuntimeError("bench_agent: the agent does not read every benchmark pod's annotations")
        stats = AgentStats()
        enforcer = Enforcer(backend, ProcReader(proc_root), EnforcementConfig(), stats)
        view = ViewHolder()

        tick_wall: list[float] = []
        for _ in range(ticks):
            t0 = time.perf_counter()
            lanes = pod_lanes(pods, NODE)
            usage = enforcer.measure(lanes)
            enforcer.decide(lanes, usage)
            view.publish(NodeView(lanes, usage, lane_views(lanes, usage)))
            tick_wall.append(time.perf_counter() - t0)

        registry = make_registry(GpuCollector(backend, HealthBoard(), view, stats, NODE))
        body = generate_latest(registry)
        samples = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        wall, cpu_per_scrape = _collect_loop(registry, scrapes)
        compat = make_registry(GpuCollector(backend, HealthBoard(), view, stats, NODE, dcgm_compat=True))
        compat_samples = sum(1 for line in generate_latest(compat).decode().splitlines() if line and line[0] != "#")
        compat_wall, compat_cpu = _collect_loop(compat, scrapes)

        server = MetricsServer(registry, "127.0.0.1", 0)
        server.start()
        http: list[float] = []
        try:
            url = f"http://127.0.0.1:{server.port}/metrics"
            for _ in range(scrapes // 4):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=5) as resp:
                    resp.read()
                http.append(time.perf_counter() - t0)
        finally:
            server.stop()

    ms = 1000.0
    rows = [
        f"| collect+render (in process) | {scrapes} | {_pct(wall, 0.5) * ms:.2f} | {_pct(wall, 0.99) * ms:.2f} "
        f"| {cpu_per_scrape * ms:.2f} |",
        f"| collect+render with `--dcgm-compat` ({compat_samples} samples) | {scrapes} "
        f"| {_pct(compat_wall, 0.5) * ms:.2f} | {_pct(compat_wall, 0.99) * ms:.2f} | {compat_cpu * ms:.2f} |",
        f"| HTTP GET /metrics (loopback) | {len(http)} | {_pct(http, 0.5) * ms:.2f} | {_pct(http, 0.99) * ms:.2f} | — |",
        f"| enforcement tick (attribute+judge+lanes) | {ticks} | {_pct(tick_wall, 0.5) * ms:.2f} "
        f"| {_pct(tick_wall, 0.99) * ms:.2f} | — |",
    ]
    return "\n".join([
        "## Node agent: scrape and enforcement cost",
        "",
        f"Fake backend, {GPUS} GPUs x {PODS} pods (one GPU process each, 2 lanes per GPU); one exposition is "
        f"{samples} samples, {len(body)} bytes. Wall times from `time.perf_counter`, CPU from "
        "`time.process_time` over the in-process loop (all threads of this process). "
        f"Mean of the tick: {statistics.fmean(tick_wall) * ms:.2f} ms.",
        "",
        "| operation | runs | p50 ms | p99 ms | CPU ms per scrape |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "Run: `.venv/bin/python benchmarks/run_all.py --only bench_agent` (add `--quick` for a smoke run; `--out FILE` writes elsewhere than docs/benchmarks.md).",
    ])


if __name__ == "__main__":
    print(run(quick=False))
