#!/usr/bin/env python3
"""Measure the local control plane: warm `ensure`, start to ready, CRD install, fake nodes, restart, stop.

Prints one line per run and the median, so docs/control-plane.md quotes figures anyone can re-measure:

    .venv/bin/python hack/measure_controlplane.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gpulane_dev import crds, fakenodes
from gpulane_dev.binaries import ensure
from gpulane_dev.commands import Reporter
from gpulane_dev.controlplane import ControlPlane, ControlPlaneOptions
from gpulane_dev.kubeclient import connected

ROOT = Path(__file__).resolve().parents[1]


def one_run(workdir: Path) -> dict[str, float]:
    started = time.monotonic()
    binaries = ensure(reporter=Reporter(None))
    figures = {"ensure_warm_s": time.monotonic() - started}
    plane = ControlPlane.start(ControlPlaneOptions.from_binaries(binaries, workdir))
    try:
        figures.update(etcd_ready_s=plane.timings.etcd_ready_s, apiserver_ready_s=plane.timings.apiserver_ready_s,
                       start_total_s=plane.timings.total_s)  # fmt: skip
        with connected(plane.kubeconfig) as api:
            t = time.monotonic()
            crds.install_directory(api, ROOT / "crds")
            figures["crds_established_s"] = time.monotonic() - t
            t = time.monotonic()
            names = fakenodes.create(api, fakenodes.fleet(4, "m"))
            fakenodes.wait_ready(api, names)
            figures["four_nodes_ready_s"] = time.monotonic() - t
        figures["restart_apiserver_s"] = plane.restart_apiserver()
    finally:
        t = time.monotonic()
        plane.stop()
        figures["stop_s"] = time.monotonic() - t
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="gpulane-measure-") as tmp:
            figures = one_run(Path(tmp))
        runs.append(figures)
        print(f"run {i + 1}: " + "  ".join(f"{k}={v:.2f}" for k, v in figures.items()), flush=True)
    print("median: " + "  ".join(f"{k}={statistics.median(r[k] for r in runs):.2f}" for k in runs[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
