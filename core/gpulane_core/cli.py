"""The one `gpulane` command: a stdlib dispatcher whose subcommands come from entry points.

Each component registers its subcommands in the entry-point group ``gpulane.commands``; a
register function receives the subparsers object and adds its parser with ``set_defaults(func=...)``.
The core never imports a component, and a component whose extra is not installed fails only its
own subcommand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

EXIT_USAGE = 2

Register = Callable[[Any], None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpulane", description="GPU sharing for Kubernetes: memory lanes, turns and prefetch."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group="gpulane.commands"), key=lambda e: e.name):
        try:
            register: Register = ep.load()
        except ImportError as exc:
            broken = subparsers.add_parser(ep.name, help=f"(unavailable: {exc})")
            broken.set_defaults(func=_unavailable(ep.name, exc))
            continue
        register(subparsers)
    return parser


def _unavailable(name: str, exc: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        print(f"gpulane {name}: not installed ({exc}); install gpulane with its extra", file=sys.stderr)
        return EXIT_USAGE

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    result = func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
