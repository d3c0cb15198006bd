"""``gpulane place``: replay a node list and a pod list under several placement policies.

Parse (traces, flags) -> decide (the experiment, pure policies) -> apply (print the table, write
JSON and the plot). Bad input is one line naming the file, line and field, exit status 2, and no
output file is touched: files are written to a temporary name and renamed only when complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2
DEFAULT_POLICIES = "random,dotprod,gpupacking,gpuclustering,bestfit,fgd,fgd-balance"


def register_place(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "place",
        help="cluster placement on the Alibaba GPU-sharing trace (FGD family and the operator's profiles)",
        description="Schedule a pod list onto a node list one pod at a time under each policy and "
        "report the GPU allocation ratio (FGD paper protocol).",
    )
    parser.add_argument("--nodes", required=True, help="node list CSV (sn,cpu_milli,memory_mib,gpu,model)")
    parser.add_argument("--pods", required=True, help="pod list CSV (name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec)")
    parser.add_argument(
        "--policy",
        default=DEFAULT_POLICIES,
        help="comma-separated placement policies of the one registry: the FGD family (default: "
        f"{DEFAULT_POLICIES}) or the operator's lane profiles (gpulane, binpack, spread)",
    )
    parser.add_argument("--inflation", type=float, default=1.3, help="GPU request / cluster capacity (default 1.3)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed", type=int, help="one seed (default 42)")
    group.add_argument("--seeds", help="seed range or list: 42-51 or 42,43,44")
    parser.add_argument("--json", dest="json_out", help="write {policies: {NAME: {final_allocation_ratio, curve}}}")
    parser.add_argument("--plot", help="write the allocation curves as a PNG")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress on stderr")
    parser.set_defaults(func=run_place)


def parse_seeds(seed: int | None, seeds: str | None) -> tuple[int, ...]:
    if seeds is None:
        return (42 if seed is None else seed,)
    out: list[int] = []
    try:
        for part in seeds.split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if sep:
                first, last = int(lo), int(hi)
                if last < first:
                    raise ValueError(f"seeds: range {part} runs backwards")
                out.extend(range(first, last + 1))
            else:
                out.append(int(part))
    except ValueError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith("seeds:") else f"seeds: not a seed list: {seeds!r}") from None
    if not out:
        raise ValueError(f"seeds: no seed in {seeds!r}")
    return tuple(dict.fromkeys(out))


def run_place(args: argparse.Namespace) -> int:
    from gpulane_core.fragmentation.family import PUBLISHED_NAMES
    from gpulane_core.registry import default_registry

    from gpulane_sim.files import write_atomically
    from gpulane_sim.place.curve import load_published, published_final, published_mean_curve, shared_data_dir
    from gpulane_sim.place.experiment import prepare, run
    from gpulane_sim.place.report import format_table, json_document, summarize
    from gpulane_sim.place.trace import TraceError, load_nodes, load_pods

    def fail(message: str) -> int:
        print(f"gpulane place: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        policies = default_registry().parse(args.policy)
        seeds = parse_seeds(args.seed, args.seeds)
        if args.inflation < 0:
            raise ValueError(f"inflation: must not be negative, got {args.inflation}")
        nodes = load_nodes(args.nodes)
        pods = load_pods(args.pods)
    except (TraceError, ValueError) as exc:
        return fail(str(exc))
    if sum(n.gpu_count for n in nodes) == 0:
        return fail(f"{args.nodes}: gpu: the node list has no GPUs")

    results = []
    for seed in seeds:
        workload = prepare(nodes, pods, seed, args.inflation)
        for policy in policies:
            result = run(workload, policy, seed)
            if not args.quiet:
                print(
                    f"  seed {seed} {policy}: {100 * result.final_allocation_ratio:.2f}% "
                    f"({result.seconds:.1f}s)",
                    file=sys.stderr,
                )
            results.append(result)
    summaries = summarize(results)

    workload_name = Path(args.pods).stem
    published: dict[str, float] = {}
    published_curves: dict[str, dict[int, float]] = {}
    expected = shared_data_dir() / "fgd_expected_alloc.csv"
    if expected.is_file() and abs(args.inflation - 1.3) < 1e-9:
        curves = load_published(expected, workload_name)
        for policy in policies:
            name = PUBLISHED_NAMES.get(policy)
            value = published_final(curves, name) if name else None
            if value is not None and name is not None:
                published[policy] = value
                published_curves[policy] = published_mean_curve(curves, name)
    print(f"{workload_name}: {len(nodes)} nodes, {sum(n.gpu_count for n in nodes)} GPUs, "
          f"{len(pods)} trace pods, inflation {args.inflation}, seeds {','.join(map(str, seeds))}")
    print(format_table(summaries, published, published_curves))
    if published:
        print(
            "published = mean over seeds 42-51 of the FGD artifact (analysis_allo_discrete.csv); "
            "max curve gap = largest |ours - published| over arrived 0..130%"
        )

    meta = {
        "nodes": str(args.nodes),
        "pods": str(args.pods),
        "inflation": args.inflation,
        "seeds": list(seeds),
        "published_at_130": published,
    }
    document = json_document(summaries, meta)

    def write_json(path: Path) -> None:
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")

    def write_png(path: Path) -> None:
        from gpulane_sim.place.plot import write_plot

        curves_by_policy = {s.policy: list(s.curve) for s in summaries}
        write_plot(path, curves_by_policy, f"{workload_name}: GPU allocation vs arrived GPU request")

    for target, writer in ((args.json_out, write_json), (args.plot, write_png)):
        if not target:
            continue
        try:
            write_atomically(Path(target), writer)
        except OSError as exc:
            return fail(f"{target}: cannot write: {exc.strerror or exc}")
    return EXIT_OK
