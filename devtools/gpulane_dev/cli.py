"""`gpulane dev-cluster`: argparse wiring for up/down/status (the work is in gpulane_dev.devcluster).

`up` prints progress on stderr and only the kubeconfig path on stdout, as its last line, so
`KUBECONFIG=$(gpulane dev-cluster up | tail -1) kubectl get nodes` works.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gpulane_core.quantity import QuantityError, parse_mib

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev-cluster",
        help="a local Kubernetes control plane (etcd + kube-apiserver + kwok) with fake GPU nodes",
        description="Local control plane for development: real kube-apiserver, fake GPU nodes (kwok), "
        "gpulane CRDs and fake-backend node agents. Processes keep running after `up` returns.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-dir", help="where pids, ports, logs and the kubeconfig live "
                        "(default: $GPULANE_DEV_CACHE_ROOT/dev-cluster, i.e. ~/.cache/gpulane/dev-cluster)")  # fmt: skip
    parser.add_argument("--cache-dir", help="binaries cache root (default: $GPULANE_DEV_CACHE_ROOT or ~/.cache/gpulane)")
    actions = parser.add_subparsers(dest="dev_cluster_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the cluster; prints the kubeconfig path last")
    up.add_argument("--nodes", type=int, default=2, help="fake GPU nodes (default 2)")
    up.add_argument("--gpus-per-node", type=int, default=4, help="GPUs per fake node (default 4)")
    up.add_argument("--gpu-memory", default="16Gi", help="memory per GPU, e.g. 16Gi, 40960Mi (default 16Gi)")
    up.add_argument("--node-prefix", default="gpu-node", help="node names are <prefix>-<i> (default gpu-node)")
    up.add_argument("--crds", help="directory of CRD YAML files to install (default: the repo's crds/)")
    up.add_argument("--real-nodes", type=int, default=0,
                    help="real nodes: containerd + kubelet each, with kube-controller-manager and kube-scheduler "
                    "(default 0; needs root, installs Debian's containerd, runc and CNI plugins)")
    up.add_argument("--real-gpus-per-node", type=int, default=2, help="fake GPUs per real node (default 2)")
    up.add_argument("--no-agents", action="store_true",
                    help="do not start fake-backend node agents (e.g. to install the chart's DaemonSet instead)")
    up.add_argument("--agent-metrics-port", type=int,
                    help="metrics port of the first node's agent, +1 per node (default: free ports)")  # fmt: skip
    up.set_defaults(func=_up)
    down = actions.add_parser("down", help="stop every process `up` started")
    down.set_defaults(func=_down)
    status = actions.add_parser("status", help="report each process and the apiserver's readiness")
    kubelet = actions.add_parser("kubelet", help="stop, start or restart one real node's kubelet (fault drills)")
    kubelet.add_argument("kubelet_action", choices=("stop", "start", "restart"), metavar="stop|start|restart")
    kubelet.add_argument("node", help="a real node's name, e.g. gpulane-real-0")
    kubelet.set_defaults(func=_kubelet)
    status.set_defaults(func=_status)


def _settings_help() -> str:
    from gpulane_core.settings import describe

    from gpulane_dev.settings import DevSettings

    return describe(DevSettings, "dev", set_flag=False)


def _settings(args: argparse.Namespace) -> Any:
    from gpulane_dev.settings import load_settings

    return load_settings(cache_root=args.cache_dir)


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir:
        return Path(args.state_dir).expanduser().resolve()
    path: Path = _settings(args).cache.dev_cluster
    return path


def default_crds_dir() -> Path | None:
    """The repo's crds/ (current directory first, then next to this source tree); None if absent."""
    candidates = [Path.cwd() / "crds", Path(__file__).resolve().parents[2] / "crds"]
    return next((c for c in candidates if c.is_dir() and any(c.glob("*.yaml"))), None)


def repo_root() -> Path:
    """The source tree the project image is built from (this package's checkout)."""
    return Path(__file__).resolve().parents[2]


def _up(args: argparse.Namespace) -> int:
    from gpulane_dev import binaries, devcluster

    try:
        gpu_memory_mib = parse_mib(args.gpu_memory)
    except QuantityError as exc:
        print(f"gpulane dev-cluster up: --gpu-memory: {exc}", file=sys.stderr)
        return EXIT_FAILED
    crds_dir = Path(args.crds) if args.crds else default_crds_dir()
    if crds_dir is not None and not crds_dir.is_dir():
        print(f"gpulane dev-cluster up: --crds: {crds_dir} is not a directory", file=sys.stderr)
        return EXIT_FAILED
    if crds_dir is None:
        print("warning: no crds/ directory found; no CRDs installed (pass --crds DIR)", file=sys.stderr)
    try:
        options = devcluster.UpOptions(
            state_dir=_state_dir(args), nodes=args.nodes, gpus_per_node=args.gpus_per_node,
            gpu_memory_mib=gpu_memory_mib, node_prefix=args.node_prefix, crds_dir=crds_dir,
            agents=not args.no_agents, agent_metrics_base_port=args.agent_metrics_port,
            real_nodes=args.real_nodes, real_gpus_per_node=args.real_gpus_per_node, repo=repo_root(),
        )  # fmt: skip
        tools = binaries.ensure(_settings(args))  # the dev setting `containerd` reaches the nodes through it
        state = devcluster.up(options, tools)
    except Exception as exc:  # every failure ends as one clear message and a non-zero exit
        print(f"gpulane dev-cluster up: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(state.kubeconfig)
    return 0


def _down(args: argparse.Namespace) -> int:
    from gpulane_dev import devcluster

    try:
        devcluster.down(_state_dir(args))
    except devcluster.DevClusterError as exc:
        print(f"gpulane dev-cluster down: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _kubelet(args: argparse.Namespace) -> int:
    from gpulane_dev import devcluster

    try:
        devcluster.kubelet(_state_dir(args), args.node, args.kubelet_action)
    except (devcluster.DevClusterError, OSError) as exc:
        print(f"gpulane dev-cluster kubelet {args.kubelet_action}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _status(args: argparse.Namespace) -> int:
    from gpulane_dev import devcluster

    try:
        state, rows, ready = devcluster.status(_state_dir(args))
    except devcluster.DevClusterError as exc:
        print(f"gpulane dev-cluster status: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(devcluster.format_status(state, rows, ready))
    healthy = state is not None and ready and all(r.running for r in rows)
    return 0 if healthy else EXIT_FAILED
