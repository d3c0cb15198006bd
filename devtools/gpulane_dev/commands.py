"""Run one external tool command with its output kept, and fail with the exact command and stderr.

Obtaining binaries means running `go`, `pip` and `apt-get`; when one fails, the person reading the
error needs the exact command line and the end of what it printed, not a Python traceback.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

_TAIL_CHARS = 4000


class CommandFailed(RuntimeError):
    """An external command failed; the message holds the command, its exit code and its output's tail."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, log: Path | None) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        where = f"\nfull log: {log}" if log else ""
        super().__init__(
            f"command failed (exit {returncode}): {shlex.join(argv)}\n"
            f"--- output (last {_TAIL_CHARS} chars) ---\n{output[-_TAIL_CHARS:]}{where}"
        )


@dataclass(frozen=True, slots=True)
class Reporter:
    """Prints progress lines; `stream` is injected so tests and quiet callers can silence it."""

    stream: TextIO | None = sys.stderr
    prefix: str = "[gpulane binaries]"

    def say(self, message: str) -> None:
        if self.stream is not None:
            print(f"{self.prefix} {message}", file=self.stream, flush=True)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float | None = None,
) -> str:
    """Run `argv`, return its combined output; raise CommandFailed on a non-zero exit or a timeout.

    `env` is added to the current environment (not a replacement), so PATH and HOME still apply.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            list(argv),
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandFailed(argv, 127, f"{argv[0]}: not found on PATH ({exc})", None) from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode(errors="replace")
        raise CommandFailed(argv, 124, f"{out}\n(timed out after {timeout}s)", log) from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(f"$ {shlex.join(argv)}\n{proc.stdout}\n")
    if proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stdout, log)
    return proc.stdout


def timed(reporter: Reporter, what: str, started: float) -> float:
    """Report how long `what` took since `started` (a time.monotonic() value); return the seconds."""
    seconds = time.monotonic() - started
    reporter.say(f"{what} in {seconds:.1f}s")
    return seconds
