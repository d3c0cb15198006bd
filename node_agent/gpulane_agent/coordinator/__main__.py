"""Run the coordinator on its own: ``python -m gpulane_agent.coordinator --socket /tmp/c.sock``.

For development, benchmarks and the multi-process tests; in a cluster the node agent embeds
:class:`CoordinatorServer`. Prints ``ready`` once listening, and the final per-lane metric snapshot
as JSON when stopped (SIGTERM / SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import asdict

from gpulane_core.ordering import parse_policy

from gpulane_agent.coordinator.server import CoordinatorServer
from gpulane_agent.coordinator.settings import CoordinatorSettings, TurnSettings

DEFAULTS = TurnSettings()
_DEFAULT_FIELDS = {
    "turn_timeout": "turn_timeout_s",
    "timeout_factor": "timeout_factor",
    "max_missed": "max_missed_deadlines",
    "window": "window_s",
}


def parse_args(argv: list[str] | None = None) -> CoordinatorSettings:
    p = argparse.ArgumentParser(prog="python -m gpulane_agent.coordinator", description=__doc__)
    p.add_argument("--socket", required=True, help="unix socket path to listen on")
    p.add_argument("--policy", default="weight", help="fifo, srtf, pack, fair, weight or gpulane")
    p.add_argument("--turn-timeout", type=float, help="minimum seconds per turn")
    p.add_argument("--timeout-factor", type=float)
    p.add_argument("--max-missed", type=int)
    p.add_argument("--window", type=float, help="statistics window (s)")
    p.add_argument("--hostname", default="")
    p.set_defaults(**{k: getattr(DEFAULTS, v) for k, v in _DEFAULT_FIELDS.items()})
    args = p.parse_args(argv)
    try:
        policy = parse_policy(args.policy)
    except ValueError as exc:
        p.error(str(exc))
    turns = TurnSettings(
        policy=policy,
        turn_timeout_s=args.turn_timeout,
        timeout_factor=args.timeout_factor,
        max_missed_deadlines=args.max_missed,
        window_s=args.window,
    )
    settings = CoordinatorSettings(socket_path=args.socket, hostname=args.hostname, turns=turns)
    problems = settings.validate()
    if problems:
        p.error("; ".join(problems))
    return settings


async def serve(settings: CoordinatorSettings) -> None:
    server = CoordinatorServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print("ready", flush=True)
    await stop.wait()
    snapshot = server.metrics()
    await server.stop()
    print(json.dumps([asdict(lane) for lane in snapshot]), flush=True)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
