"""Run the coordinator on its own: ``python -m gpulane_agent.coordinator --socket /tmp/c.sock``.

For development, benchmarks and the multi-process tests; in a cluster the node agent embeds
:class:`CoordinatorServer`. Prints ``ready`` once listening, and the final per-lane metric snapshot
as JSON when stopped (SIGTERM / SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from gpulane_core import settings as core_settings
from gpulane_core.settings import SettingsError, parse_assignments

from gpulane_agent.coordinator.server import CoordinatorServer
from gpulane_agent.coordinator.settings import CoordinatorSettings

COMPONENT = "coordinator"  # env GPULANE_COORDINATOR_<SECTION>_<FIELD>, file GPULANE_COORDINATOR_CONFIG
_FLAGS = {
    "socket": "socket_path",
    "hostname": "hostname",
    "policy": "turns.policy",
    "turn_timeout": "turns.turn_timeout_s",
    "timeout_factor": "turns.timeout_factor",
    "max_missed": "turns.max_missed_deadlines",
    "window": "turns.window_s",
}


def parse_args(argv: list[str] | None = None, env: dict[str, str] | None = None) -> CoordinatorSettings:
    """Flags > GPULANE_COORDINATOR_* > --config file, through gpulane_core.settings (the agent's
    ``coordinator.turns`` section is the same TurnSettings)."""
    p = argparse.ArgumentParser(
        prog="python -m gpulane_agent.coordinator", description=__doc__,
        epilog=core_settings.describe(CoordinatorSettings, COMPONENT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--socket", help="unix socket path to listen on (socket_path)")
    p.add_argument("--policy", help="fifo, srtf, pack, fair, weight or gpulane (turns.policy, default weight)")
    p.add_argument("--turn-timeout", type=float, help="minimum seconds per turn (turns.turn_timeout_s)")
    p.add_argument("--timeout-factor", type=float, help="turns.timeout_factor")
    p.add_argument("--max-missed", type=int, help="turns.max_missed_deadlines")
    p.add_argument("--window", type=float, help="statistics window in s (turns.window_s)")
    p.add_argument("--hostname", help="the Hostname metric label")
    p.add_argument("--config", help=f"YAML settings file (env {core_settings.config_env(COMPONENT)})")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any setting below by its key (repeatable)")
    args = p.parse_args(argv)
    environ = dict(os.environ) if env is None else env
    path = args.config or environ.get(core_settings.config_env(COMPONENT))
    try:
        text = Path(path).read_text() if path else None
        named = {key: getattr(args, name) for name, key in _FLAGS.items() if getattr(args, name) is not None}
        flags = {**parse_assignments(args.set), **named}
        return core_settings.load(CoordinatorSettings, COMPONENT, file_text=text, env=environ, flags=flags)
    except (OSError, SettingsError) as exc:
        p.error(str(exc))


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
