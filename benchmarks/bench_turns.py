"""Lane turns: coordinator overhead per turn, and (with a GPU) switch time and two-job sharing.

``run(quick)`` returns a Markdown section. The turn-overhead part always runs: a real coordinator
process, real client processes, a real unix socket, against a no-coordinator loop measured in the
same run. The GPU part runs only where torch and CUDA are present; otherwise it says so and reports
nothing for it. Run alone: ``python benchmarks/bench_turns.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

LANE = "GPU-bench/lane-0"


# ---- turn overhead ----------------------------------------------------------------------------


def _start_coordinator(sock: Path, policy: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "gpulane_agent.coordinator", "--socket", str(sock), "--policy", policy, "--turn-timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"coordinator did not start: {line!r}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def _turn_job(sock: str, job: str, turns: int, again: bool, out: str) -> None:
    """One client process: ``turns`` empty turns, per-turn latencies written as JSON."""
    from gpulane_client import Lane, LaneConfig

    lane = Lane(LaneConfig(sock, LANE, job))
    Path(out + ".ready").touch()
    go = Path(out).with_name("go")
    while not go.exists():  # start together: process start-up is not part of the measurement
        time.sleep(0.001)
    samples = []
    for i in range(turns):
        t0 = time.perf_counter()
        with lane.turn(again=again and i + 1 < turns):
            pass
        samples.append(time.perf_counter() - t0)
    end = time.monotonic()  # system-wide clock: comparable across the job processes
    lane.close()
    Path(out).write_text(json.dumps({"end": end, "samples": samples}))


def _baseline(turns: int) -> float:
    """The same loop with no coordinator: a no-op context manager per iteration."""
    begin = time.perf_counter()
    for _ in range(turns):
        with nullcontext():
            pass
    return (time.perf_counter() - begin) / turns


ECHO_SERVER = """
import asyncio, sys
async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line)
async def main():
    server = await asyncio.start_unix_server(echo, path=sys.argv[1])
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def _ping_pong(sock: Path, turns: int) -> list[float]:
    """Raw floor: one JSON line to an asyncio echo server and back, blocking client, no threads."""
    import socket

    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(sock)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(sock))
        stream = client.makefile("rb")
        line = b'{"v":1,"type":"turn_done","turn_id":1,"compute_s":0.0,"transfer_s":0.0,"again":true}\n'
        samples = []
        for _ in range(turns):
            t0 = time.perf_counter()
            client.sendall(line)
            json.loads(stream.readline())
            samples.append(time.perf_counter() - t0)
        client.close()
        return samples
    finally:
        server.kill()
        server.wait()


def _run_jobs(sock: Path, jobs: int, turns: int, again: bool, workdir: Path) -> tuple[float, list[float]]:
    outs = [workdir / f"job{i}.json" for i in range(jobs)]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--turn-job", str(sock), f"job{i}", str(turns), str(int(again)), str(outs[i])])
        for i in range(jobs)
    ]
    deadline = time.monotonic() + 120
    while not all(Path(str(out) + ".ready").exists() for out in outs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("turn jobs did not connect")
        time.sleep(0.005)
    (workdir / "go").touch()
    begin = time.monotonic()
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"turn job exited with {proc.returncode}")
    results = [json.loads(out.read_text()) for out in outs]
    (workdir / "go").unlink()
    for out in outs:
        Path(str(out) + ".ready").unlink()
    wall = max(r["end"] for r in results) - begin
    samples: list[float] = [x for r in results for x in r["samples"]]
    return wall, samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def turn_overhead(quick: bool) -> str:
    turns = 1000 if quick else 10000
    rows = []
    base = _baseline(turns)
    rows.append(("no coordinator (baseline loop)", 1, "-", turns, base * 1e6, base * 1e6, base * 1e6))
    with tempfile.TemporaryDirectory(prefix="glb-", dir="/tmp") as d:
        workdir = Path(d)
        echo = _ping_pong(workdir / "echo.sock", turns)
        rows.append(("raw JSON-line ping-pong (asyncio echo server)", 1, "1 out, 1 back", turns, sum(echo) / turns * 1e6, _pct(echo, 0.5) * 1e6, _pct(echo, 0.99) * 1e6))
        for policy, jobs, again in (("fair", 1, False), ("fair", 1, True), ("fair", 3, True), ("weight", 3, True)):
            sock = workdir / f"{policy}{jobs}{again}.sock"
            coordinator = _start_coordinator(sock, policy)
            try:
                wall, samples = _run_jobs(sock, jobs, turns, again, workdir)
            finally:
                _stop(coordinator)
            mode = "turn_done+again" if again else "request/grant/done"
            per_turn = wall / (jobs * turns)  # lane throughput: wall time per turn handed out
            rows.append((f"coordinator, {policy}", jobs, mode, turns, per_turn * 1e6, _pct(samples, 0.5) * 1e6, _pct(samples, 0.99) * 1e6))
    lines = [
        "### Turn overhead (real coordinator process, real unix socket, empty turns)",
        "",
        "| setup | jobs | messages per turn | turns per job | wall µs per turn | p50 µs per `turn()` | p99 µs per `turn()` |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.1f} |" for r in rows]
    lines += [
        "",
        "Wall µs per turn = time from a common start signal (all jobs connected) to the last job's last turn, "
        "divided by all turns: what one lane hand-off costs. "
        "With 3 jobs each `turn()` also waits while the other two hold the lane, so its p50 is about three "
        "hand-offs. `request/grant/done`: `request_turn` → `turn_granted` → `turn_done`; `turn_done+again`: the "
        "next request rides on `turn_done` (what `Lane.iterate` does). Baseline: the same loop with a no-op "
        "context manager in this process. Raw ping-pong: the floor for any Python request/response over a unix "
        "socket on this machine (no coordinator logic, no client reader thread). Each job process includes its own "
        "JSON encode/decode and reader thread.",
    ]
    return "\n".join(lines)


# ---- GPU: switch time and two-job sharing ------------------------------------------------------


def _gpu_available() -> str:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch is installed but no CUDA device is visible"
    return ""


def _resnet_like(torch: Any) -> Any:
    try:
        import torchvision  # type: ignore[import-not-found]

        return torchvision.models.resnet50()
    except ImportError:  # a conv stack of about ResNet-50's size (~25 M parameters)
        nn = torch.nn
        layers: list[Any] = [nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU()]
        channels = 64
        for width, blocks in ((256, 3), (512, 4), (1024, 6), (2048, 3)):
            for _ in range(blocks):
                layers += [nn.Conv2d(channels, width // 4, 1), nn.BatchNorm2d(width // 4), nn.ReLU(),
                           nn.Conv2d(width // 4, width // 4, 3, padding=1), nn.BatchNorm2d(width // 4), nn.ReLU(),
                           nn.Conv2d(width // 4, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1000)]
        return nn.Sequential(*layers)


def _h2d_bandwidth(torch: Any, nbytes: int = 256 << 20) -> float:
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    best = float("inf")
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dev.copy_(host, non_blocking=True)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1000)
    return nbytes / best


def _timed(torch: Any, fn: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def switch_time(quick: bool) -> str:
    import torch
    from gpulane_client.grouping import Grouping, LinkModel
    from gpulane_client.torch import pipeline

    repeats = 5 if quick else 20
    bandwidth = _h2d_bandwidth(torch)
    x = torch.randn(8, 3, 224, 224, device="cuda")
    rows = []
    for grouping in (Grouping.WHOLE, Grouping.PER_LAYER, Grouping.MODEL_AWARE):
        model = _resnet_like(torch).cuda().eval()
        nbytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        with torch.no_grad():
            resident = _timed(torch, lambda model=model: model(x), repeats)
            swapper, plan = pipeline(model, grouping=grouping, link=LinkModel(bytes_per_s=bandwidth), forward_s=resident)

            def switch(swapper: Any = swapper, model: Any = model) -> None:
                swapper.prefetch()
                model(x)

            samples = []
            for _ in range(repeats):
                swapper.offload()
                samples.append(_timed(torch, switch, 1))
        cold = statistics.median(samples)
        rows.append((grouping.value, len(plan.groups), nbytes, resident, cold, cold - resident, nbytes / bandwidth))
    lines = [
        "### Switch time: bringing a ResNet-50-sized model back and running one forward (batch 8)",
        "",
        f"Measured pinned host-to-device bandwidth: {bandwidth / 1e9:.2f} GB/s.",
        "",
        "| grouping | groups | model bytes | resident forward ms | offloaded: prefetch + forward ms | switch overhead ms | PCIe lower bound ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3] * 1e3:.2f} | {r[4] * 1e3:.2f} | {r[5] * 1e3:.2f} | {r[6] * 1e3:.2f} |" for r in rows]
    lines += ["", "`whole` = one copy then compute (no pipelining); overhead = offloaded minus resident; lower bound = bytes / bandwidth."]
    return "\n".join(lines)


def _gpu_job(sock: str, job: str, iterations: int, out: str) -> None:
    """One training job sharing the GPU through a lane: forward+backward per turn, swapped between turns."""
    import torch
    from gpulane_client import Lane, LaneConfig
    from gpulane_client.torch import pipeline

    model = _resnet_like(torch).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(32, 3, 224, 224, device="cuda")
    y = torch.randint(0, 1000, (32,), device="cuda")
    standalone = sock == "-"
    lane = Lane(None, standalone_reason="back-to-back baseline") if standalone else Lane(LaneConfig(sock, LANE, job))
    pipeline(model, lane=None if standalone else lane)
    begin = time.perf_counter()
    for _ in lane.iterate(range(iterations)):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        torch.cuda.synchronize()
    Path(out).write_text(json.dumps({"elapsed": time.perf_counter() - begin}))
    lane.close()


def two_jobs(quick: bool) -> str:
    iterations = 20 if quick else 100
    with tempfile.TemporaryDirectory(prefix="glg-", dir="/tmp") as d:
        workdir = Path(d)

        def launch(sock: str, names: list[str]) -> float:
            procs = [subprocess.Popen([sys.executable, __file__, "--gpu-job", sock, n, str(iterations), str(workdir / n)]) for n in names]
            begin = time.perf_counter()
            for proc in procs:
                if proc.wait(timeout=1800) != 0:
                    raise RuntimeError(f"GPU job exited with {proc.returncode}")
            return time.perf_counter() - begin

        back_to_back = launch("-", ["solo-a"]) + launch("-", ["solo-b"])
        sock = workdir / "c.sock"
        coordinator = _start_coordinator(sock, "weight")
        try:
            shared = launch(str(sock), ["a", "b"])
        finally:
            _stop(coordinator)
    return "\n".join([
        "### Two training jobs on one GPU: one lane with turns and pipelined prefetch vs back to back",
        "",
        "| setup | iterations per job | makespan s | iterations per s |",
        "|---|---:|---:|---:|",
        f"| back to back (each alone, no coordinator) | {iterations} | {back_to_back:.2f} | {2 * iterations / back_to_back:.2f} |",
        f"| shared lane, `weight` policy, prefetch + offload | {iterations} | {shared:.2f} | {2 * iterations / shared:.2f} |",
        "",
        "Each job: ResNet-50-sized model, batch 32, SGD; process start-up and CUDA initialisation are included in both rows.",
    ])


def run(quick: bool) -> str:
    parts = ["## Lane turns and prefetch (coordinator + client)", "", turn_overhead(quick), ""]
    reason = _gpu_available()
    if reason:
        parts.append(
            "### GPU: switch time and two-job sharing\n\nNot measured: " + reason + ", so no GPU was available to this run. "
            "The switch-time (with and without pipelined prefetch, against the PCIe lower bound) and two-job "
            "throughput sections run only with torch and a CUDA device."
        )
    else:
        parts += [switch_time(quick), "", two_jobs(quick)]
    return "\n".join(parts)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--turn-job":
        sock, job, turns, again, out = sys.argv[2:7]
        _turn_job(sock, job, int(turns), again == "1", out)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--gpu-job":
        sock, job, iterations, out = sys.argv[2:6]
        _gpu_job(sock, job, int(iterations), out)
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
