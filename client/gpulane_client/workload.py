"""``gpulane-workload``: a stand-in training loop that takes one lane turn per iteration.

It holds the memory of its assignment (the environment ``Allocate`` gives the container): the
persistent part (``GPULANE_PERSISTENT_MIB``) for the whole run and the ephemeral part
(``GPULANE_EPHEMERAL_MIB``) only during its turns, on every GPU of ``CUDA_VISIBLE_DEVICES``. It does not
touch a real GPU: on the fake backend it reports what it holds through a process report in
``GPULANE_FAKE_GPU_DIR`` (``gpulane_core.fakegpu``), so the agent sees a real PID using GPU memory.
``--over-use M`` holds ``GPULANE_MEMORY_LIMIT_MIB + M`` MiB from the start to the end instead, M MiB past
its lane limit (on one GPU of the job with ``--over-use-gpu``).

Each turn prints one line (``job=... iteration=i/n lane=... turn=... held_bytes=...``, held bytes summed
over the job's GPUs). Exit 0 when done, 2 on bad flags or environment, 1 when the coordinator evicts or
refuses it or the report cannot be written, 143 on SIGTERM; the report file is removed on every way out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gpulane_core import fakegpu
from gpulane_core.quantity import MIB

from gpulane_client.lane import ENV_JOB, ENV_LANE, Lane, LaneError, LaneEvictedError, StandaloneWarning

PROG = "gpulane-workload"
ENV_PERSISTENT = "GPULANE_PERSISTENT_MIB"
ENV_EPHEMERAL = "GPULANE_EPHEMERAL_MIB"
ENV_LIMIT = "GPULANE_MEMORY_LIMIT_MIB"
ENV_DEVICES = "CUDA_VISIBLE_DEVICES"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TERM = 0, 1, 2, 128 + signal.SIGTERM


class WorkloadError(ValueError):
    """Bad flags or environment; the message names the flag or variable."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What the loop holds, per GPU, outside and inside its turns."""

    gpus: tuple[str, ...]
    resident: tuple[int, ...]  # bytes per GPU between turns
    in_turn: tuple[int, ...]  # bytes per GPU during a turn
    working_set_bytes: int  # what a turn brings onto the GPU (the coordinator's transfer estimate)


def _mib(env: Mapping[str, str], name: str) -> int:
    text = env.get(name, "").strip()
    if not text:
        raise WorkloadError(f"{name}: not set (Allocate sets it for a gpulane pod)")
    try:
        value = int(text)
    except ValueError:
        raise WorkloadError(f"{name}: must be an integer number of MiB, got {text!r}") from None
    if value < 0:
        raise WorkloadError(f"{name}: must not be negative, got {value}")
    return value


def plan(env: Mapping[str, str], over_use_mib: int, over_use_gpu: int | None) -> Plan:
    """Pure: the memory to hold, from the assignment env and the over-use flags."""
    persistent, ephemeral = _mib(env, ENV_PERSISTENT), _mib(env, ENV_EPHEMERAL)
    gpus = tuple(g.strip() for g in env.get(ENV_DEVICES, "").split(",") if g.strip())
    if not gpus:
        raise WorkloadError(f"{ENV_DEVICES}: not set (Allocate sets it to the job's GPU UUIDs)")
    if over_use_gpu is not None and not 0 <= over_use_gpu < len(gpus):
        raise WorkloadError(f"--over-use-gpu: must be 0..{len(gpus) - 1} (the job has {len(gpus)} GPUs), "
                            f"got {over_use_gpu}")
    resident = [persistent * MIB] * len(gpus)
    in_turn = [(persistent + ephemeral) * MIB] * len(gpus)
    if over_use_mib:
        over = (_mib(env, ENV_LIMIT) + over_use_mib) * MIB
        for i in range(len(gpus)):
            if over_use_gpu is None or i == over_use_gpu:
                resident[i] = in_turn[i] = max(over, in_turn[i])
    return Plan(gpus, tuple(resident), tuple(in_turn), ephemeral * MIB)


class Reporter:
    """This process's report file (atomic replace, removed on exit); a no-op without a directory."""

    def __init__(self, directory: Path | None, gpus: Sequence[str]) -> None:
        self._dir = directory
        self._gpus = tuple(gpus)
        self._path: Path | None = None
        self._ns = os.stat("/proc/self/ns/pid").st_ino if directory is not None else 0

    def hold(self, amounts: Sequence[int]) -> None:
        if self._dir is None:
            return
        report = fakegpu.ProcessReport(self._ns, os.getpid(), dict(zip(self._gpus, amounts, strict=True)))
        path = self._dir / report.file_name
        tmp = self._dir / f".{report.file_name}.tmp"
        tmp.write_text(fakegpu.format_report(report))
        os.replace(tmp, path)
        self._path = path

    def remove(self) -> None:
        if self._path is not None:
            for path in (self._path, self._path.with_name(f".{self._path.name}.tmp")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            self._path = None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--iterations", type=int, default=10, help="turns to take (default 10)")
    p.add_argument("--iteration-seconds", type=float, default=1.0, help="compute time per turn (default 1.0)")
    p.add_argument("--over-use", type=int, default=0, metavar="MiB",
                   help="hold GPULANE_MEMORY_LIMIT_MIB + MiB for the whole run: go past the lane on purpose")
    p.add_argument("--over-use-gpu", type=int, metavar="INDEX",
                   help="over-use only this GPU of the job (0-based in CUDA_VISIBLE_DEVICES; default all)")
    return p


def _report_dir(env: Mapping[str, str]) -> Path | None:
    text = env.get(fakegpu.ENV_DIR, "")
    if not text:
        print(f"{PROG}: {fakegpu.ENV_DIR} is not set: memory is not reported (only the fake GPU backend reads "
              "reports)", file=sys.stderr)
        return None
    if not Path(text).is_dir():
        raise WorkloadError(f"{fakegpu.ENV_DIR}: no such directory {text!r} (Allocate mounts it on the fake backend)")
    return Path(text)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(EXIT_TERM)  # unwinds through the loop's finally: the report file goes too


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = _parser()
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error(f"--iterations: must be at least 1, got {args.iterations}")
    if args.iteration_seconds < 0:
        parser.error(f"--iteration-seconds: must not be negative, got {args.iteration_seconds}")
    if args.over_use < 0:
        parser.error(f"--over-use: must not be negative, got {args.over_use}")
    if args.over_use_gpu is not None and not args.over_use:
        parser.error("--over-use-gpu: needs --over-use")
    try:
        memory = plan(env, args.over_use, args.over_use_gpu)
        reporter = Reporter(_report_dir(env), memory.gpus)
    except (WorkloadError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    previous = signal.signal(signal.SIGTERM, _terminate)
    job, lane_id = env.get(ENV_JOB, "-"), env.get(ENV_LANE, "-")
    lane: Lane | None = None
    try:
        reporter.hold(memory.resident)
        with warnings.catch_warnings():  # the client logs it as well: say it once, not twice
            warnings.simplefilter("ignore", StandaloneWarning)
            lane = Lane.from_env(env, working_set_bytes=memory.working_set_bytes,
                                 iteration_estimate_s=args.iteration_seconds)
        for i in range(args.iterations):
            with lane.turn(again=i + 1 < args.iterations) as turn:
                reporter.hold(memory.in_turn)
                print(f"{PROG}: job={job} iteration={i + 1}/{args.iterations} lane={lane_id} turn={turn.id} "
                      f"held_bytes={sum(memory.in_turn)}", flush=True)
                time.sleep(args.iteration_seconds)
                reporter.hold(memory.resident)  # the ephemeral part goes before the lane is handed on
    except (LaneEvictedError, LaneError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"{PROG}: error: cannot write the process report: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        reporter.remove()
        if lane is not None:
            lane.close()
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
