"""``gpulane operator``: parse flags, load settings (flag > env > file), then run kopf in-process.

kopf is imported inside the command, so ``gpulane`` works without the operator extra installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from gpulane_core.ordering import OrderingPolicy
from gpulane_core.registry import default_registry
from gpulane_core.settings import describe, parse_assignments

from gpulane_operator.peering import operator_identity
from gpulane_operator.settings import (
    ENV_CONFIG_FILE,
    NODE_LOSS_ACTIONS,
    OperatorSettings,
    SettingsError,
    load,
)

ORDERINGS = tuple(p.value for p in OrderingPolicy)
EXIT_CONFIG = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "operator",
        help="run the GPUShareJob operator (kopf)",
        description="Order, place and bind GPUShareJobs on shared GPU lanes.",
        epilog=describe(OperatorSettings, "operator"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help=f"settings file (YAML, e.g. a mounted ConfigMap); env {ENV_CONFIG_FILE}")
    p.add_argument("--ordering", choices=ORDERINGS, help="queue ordering policy (default fifo)")
    p.add_argument(
        "--placement", help=f"placement policy: {', '.join(default_registry().names())} (default gpulane)"
    )
    p.add_argument(
        "--preemption", action=argparse.BooleanOptionalAction, default=None, help="guaranteed may preempt best-effort"
    )
    p.add_argument("--backfill", action=argparse.BooleanOptionalAction, default=None, help="let later jobs pass")
    p.add_argument("--on-node-loss", choices=NODE_LOSS_ACTIONS, help="what happens to jobs of a lost node")
    p.add_argument("--namespace", action="append", help="watch only this namespace (repeatable)")
    p.add_argument("--node-selector", help="only nodes with these labels (k=v,k2) get jobs")
    p.add_argument("--metrics-port", type=int, help="port of /metrics (0 disables; default 8080)")
    p.add_argument("--standalone", action="store_true", default=None, help="no peering: always schedule")
    p.add_argument("--peering", help="name of the (Cluster)KopfPeering object (default gpulane)")
    p.add_argument("--priority", type=int, help="peering priority of this replica")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any setting below by its key (repeatable)")
    p.add_argument("--liveness", help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """argparse values as dotted keys (None: not given); a named flag wins over ``--set`` of its key."""
    named = {
        "scheduling.ordering": args.ordering,
        "scheduling.placement": args.placement,
        "scheduling.preemption": args.preemption,
        "scheduling.backfill": args.backfill,
        "scheduling.on_node_loss": args.on_node_loss,
        "scope.namespaces": tuple(args.namespace) if args.namespace else None,
        "scope.node_selector": args.node_selector,
        "metrics.port": args.metrics_port,
        "peering.standalone": args.standalone,
        "peering.name": args.peering,
        "peering.priority": args.priority,
    }
    given = {k: v for k, v in named.items() if v is not None}
    return {**parse_assignments(args.set), **given}


def run(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get(ENV_CONFIG_FILE)
    try:
        text = Path(path).read_text() if path else None
        settings = load(text, os.environ, flags_of(args))
    except (OSError, SettingsError) as exc:
        print(f"gpulane operator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    import kopf

    import gpulane_operator.handlers  # noqa: F401  (registers the handlers)

    # kopf logs every handler run at INFO; keep that for -v and our own decisions at INFO always.
    kopf.configure(verbose=args.verbose, quiet=not args.verbose)
    logging.getLogger("gpulane_operator").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    namespaces = settings.scope.namespaces
    identity = operator_identity(os.environ)  # kopf's peering identity, also read by the peering watch
    kopf.run(
        standalone=settings.peering.standalone,
        peering_name=None if settings.peering.standalone else settings.peering.name,
        priority=settings.peering.priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
        identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        memo=kopf.Memo(settings=settings, identity=identity),
    )
    return 0
