"""Simulator throughput on a large synthetic trace, and the demo workload's policy comparison.

Throughput: a seeded synthetic trace (Poisson arrivals at 80 % offered load, Salus-like sizes, 1-20
iterations per job) on 64 GPUs (8 nodes x 8 x 16 GiB); jobs/s = jobs simulated / wall time, with the
event count and peak RSS (ru_maxrss of this process). The demo section runs every policy on
examples/workloads/demo.csv (2 x 16 GiB), with prefetch on and off, and the GA search.
Run alone: ``python benchmarks/bench_sim.py [--quick]``.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean

from gpulane_sim.bounds import avg_jct_lower_bound
from gpulane_sim.compare import compare_mixes
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import Simulation
from gpulane_sim.mixes import MixSpec, generate_mix
from gpulane_sim.policies import SimPolicy
from gpulane_sim.runner import ga_search, simulate_genome
from gpulane_sim.synthetic import synthetic_jobs
from gpulane_sim.workload import load_workload

DEMO = Path(__file__).resolve().parents[1] / "examples" / "workloads" / "demo.csv"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(quick: bool) -> list[str]:
    count = 2_000 if quick else 100_000
    gpus = 64
    jobs = synthetic_jobs(count, gpus=gpus, load=0.8, seed=1)
    iterations = sum(j.iterations for j in jobs)
    lines = [
        "## Simulator throughput",
        "",
        f"Synthetic trace: {count:,} jobs ({iterations:,} iterations), Poisson arrivals at 80 % offered load,",
        f"{gpus} GPUs (8 per node, 16 GiB), prefetch on, seed 1. One `Simulation.run()` each; CPU time is",
        "reported beside wall time because the benchmark machine is shared.",
        "",
        "| policy | jobs | simulated span (s) | wall (s) | CPU (s) | jobs/s (wall) | jobs/s (CPU) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    config = SimConfig(gpus=gpus, gpu_memory_mib=16_384)
    for policy in (SimPolicy.PACK, SimPolicy.FIFO):
        sim = Simulation(jobs, policy, config)
        started, cpu = time.perf_counter(), time.process_time()
        result = sim.run()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        lines.append(
            f"| {policy.value} | {len(result.jobs):,} | {result.makespan_s:,.0f} | {wall:.1f} | {cpu:.1f} |"
            f" {count / wall:,.0f} | {count / cpu:,.0f} | {_rss_mib():,.0f} |"
        )
    return lines


def demo(quick: bool) -> list[str]:
    jobs = load_workload(DEMO).jobs
    config = SimConfig(gpus=2, gpu_memory_mib=16_384)
    if quick:
        config = replace(config, ga_generations=3)
    lines = [
        "## Demo workload: policies side by side",
        "",
        f"`{DEMO.relative_to(DEMO.parents[2])}` ({len(jobs)} jobs), 2 GPUs x 16 GiB, 16 GB/s, placement auto;",
        f"GA: population {config.ga_population}, {config.ga_generations} generations, seed {config.seed}.",
        "",
        "| policy | prefetch | makespan (s) | avg JCT (s) | p95 JCT (s) | avg queueing (s) | GPU util | moved (GiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    best = ga_search(jobs, config)
    for prefetch in (True, False):
        cfg = replace(config, prefetch=prefetch)
        for policy in SimPolicy:
            if policy is SimPolicy.GA:
                s = simulate_genome(jobs, best.best, cfg).summary()
            else:
                s = Simulation(jobs, policy, cfg).run().summary()
            lines.append(
                f"| {policy.value} | {'on' if prefetch else 'off'} | {s['makespan_s']:.1f} | {s['avg_jct_s']:.1f} |"
                f" {s['p95_jct_s']:.1f} | {s['avg_queueing_s']:.1f} | {s['gpu_utilization']:.1%} |"
                f" {s['bytes_moved'] / 2**30:.2f} |"
            )
    g = best.best
    lines += [
        "",
        f"GA (joint space, seeded with every heuristic): {best.evaluations} configurations simulated; best"
        f" makespan {best.best_fitness:.1f} s (best heuristic {best.seeds_best:.1f} s), lower bound"
        f" {best.lower_bound:.1f} s, gap {best.gap:.1%}; best = {g.mode} lanes, {g.placement} placement,"
        f" {g.discipline} turns, {g.ordering} order.",
    ]
    return lines


def ga_curve(quick: bool) -> list[str]:
    profiles = load_workload(DEMO).jobs
    jobs = generate_mix(profiles, MixSpec(jobs=60, arrivals="bursty", burst=10, seed=1))
    budget = 10.0 if quick else 60.0
    config = SimConfig(gpus=2, gpu_memory_mib=16_384, ga_generations=1000, ga_time_budget_s=budget)
    started, cpu = time.perf_counter(), time.process_time()
    best = ga_search(jobs, config)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    lines = [
        "## GA quality over time (60 jobs)",
        "",
        f"A 60-job bursty mix (`MixSpec(jobs=60, burst=10, seed=1)`), 2 GPUs x 16 GiB, population"
        f" {config.ga_population}, time budget {budget:.0f} s ({wall:.1f} s wall, {cpu:.1f} s CPU,"
        f" {best.evaluations} configurations). Lower bound {best.lower_bound:.1f} s; best heuristic"
        f" {best.seeds_best:.1f} s.",
        "",
        "| elapsed (s) | best makespan (s) | gap to lower bound |",
        "|---:|---:|---:|",
    ]
    shown = -1.0
    for elapsed, value in best.curve:
        if elapsed - shown >= budget / 12 or (elapsed, value) == best.curve[-1]:
            lines.append(f"| {elapsed:.1f} | {value:.1f} | {value / best.lower_bound - 1:.1%} |")
            shown = elapsed
    return lines


MIXES = {
    "bursty": MixSpec(arrivals="bursty"),
    "poisson": MixSpec(arrivals="poisson"),
    # Heavy-tailed lengths (three in four jobs short): where SRTF's preemption pays most.
    "bursty, heavy tail": MixSpec(arrivals="bursty", burst=16, load=2.0, jobs=32, lengths_s=(6.0,) * 6 + (60.0, 120.0)),
}


def mixes(quick: bool) -> list[str]:
    profiles = load_workload(DEMO).jobs
    seeds = range(3 if quick else 10)
    config = SimConfig(gpus=2, gpu_memory_mib=16_384)
    lines = [
        "## Generated mixes: policies against pack",
        "",
        f"Jobs drawn from the 16 Salus-derived profiles of `examples/workloads/demo.csv` "
        f"(`gpulane_sim.mixes`), 2 GPUs x 16 GiB, seeds 0-{len(seeds) - 1}; ratios are per-mix policy/pack,",
        "averaged (worst in brackets); 'prefetch ok' counts mixes where prefetch on was no worse than off",
        "on both avg JCT and makespan.",
        "",
    ]
    for name, spec in MIXES.items():
        figures = compare_mixes(profiles, spec, seeds, config)
        by = {f.policy: f for f in figures}
        bound = mean(avg_jct_lower_bound(generate_mix(profiles, replace(spec, seed=s)), config.gpus) for s in seeds)
        lines += [
            f"**{name}** ({spec.jobs} jobs, burst {spec.burst if spec.arrivals == 'bursty' else 1}, load {spec.load},"
            f" lengths {sorted(set(spec.lengths_s))} s): fifo/srtf avg JCT"
            f" {by['fifo'].avg_jct_s / by['srtf'].avg_jct_s:.2f}x; one-lane lower bound {bound:.1f} s"
            f" (fifo/bound {by['fifo'].avg_jct_s / bound:.2f}x, srtf/bound {by['srtf'].avg_jct_s / bound:.2f}x)",
            "",
            "| policy | avg JCT (s) | makespan (s) | JCT / pack | makespan / pack | prefetch ok |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for f in figures:
            lines.append(
                f"| {f.policy} | {f.avg_jct_s:.1f} | {f.makespan_s:.1f} | {f.jct_vs_reference:.3f}"
                f" ({f.worst_jct_vs_reference:.3f}) | {f.makespan_vs_reference:.3f} ({f.worst_makespan_vs_reference:.3f}) |"
                f" {f.prefetch_no_worse}/{f.mixes} |"
            )
        lines.append("")
    return lines


def run(quick: bool) -> str:
    return "\n".join([*throughput(quick), "", *demo(quick), "", *ga_curve(quick), "", *mixes(quick)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick))
