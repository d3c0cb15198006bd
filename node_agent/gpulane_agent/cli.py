"""``gpulane agent``: run the node agent. Heavy imports (grpc, kubernetes_asyncio) happen in the command."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

EXIT_CONFIG = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "agent",
        help="run the node agent (device plugin, GPU inventory, lane enforcement, metrics)",
        description="Node agent. Precedence: flag > env GPULANE_AGENT_<SECTION>_<FIELD> > --config file.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="YAML config file (version: v1; env GPULANE_AGENT_CONFIG); see docs/agent.md")
    p.add_argument("--backend", choices=["nvml", "fake", "null"], help="GPU backend (backend.kind)")
    p.add_argument("--fake-config", help="fake backend spec YAML (backend.fake_config)")
    p.add_argument("--fake-process-dir",
                   help="where container processes report fake GPU memory (backend.fake_process_dir)")
    p.add_argument("--fail-on-init", action="store_const", const=True,
                   help="exit if NVML cannot start instead of running with no GPUs")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (metrics.port, default 9400)")
    p.add_argument("--dcgm-compat", action="store_const", const=True,
                   help="also export dcgm-exporter's DCGM_FI_* families, for nodes without dcgm-exporter "
                        "(metrics.dcgm_compat)")
    p.add_argument("--node-name", help="this Kubernetes node's name (node_name, default: hostname)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--device-plugin-dir", help="kubelet device-plugin dir (device_plugin.dir)")
    p.add_argument("--memory-unit-mib", type=int, help="MiB per gpulane.dev/gpu-memory device")
    p.add_argument("--enforcement", choices=["report", "evict"], help="what to do with a pod over its lane")
    p.add_argument("--coordinator-socket", help="lane-turn coordinator socket (coordinator.socket)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any setting below by its key (repeatable)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.set_defaults(func=run_agent)


def _settings_help() -> str:
    from gpulane_core.settings import describe

    from gpulane_agent.settings import AgentConfig

    return describe(AgentConfig, "agent")


def flags_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """argparse values to dotted config keys (None means "not given"); a named flag wins over ``--set``."""
    from gpulane_core.settings import parse_assignments

    named = {
        "backend.kind": args.backend,
        "backend.fake_config": args.fake_config,
        "backend.fake_process_dir": args.fake_process_dir,
        "backend.fail_on_init": args.fail_on_init,
        "metrics.port": args.metrics_port,
        "metrics.dcgm_compat": args.dcgm_compat,
        "node_name": args.node_name,
        "kubernetes.kubeconfig": args.kubeconfig,
        "device_plugin.dir": args.device_plugin_dir,
        "device_plugin.memory_unit_mib": args.memory_unit_mib,
        "enforcement.policy": args.enforcement,
        "coordinator.socket": args.coordinator_socket,
    }
    return {**parse_assignments(args.set), **{k: v for k, v in named.items() if v is not None}}


def run_agent(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    from gpulane_agent.gpu.backend import BackendInitError
    from gpulane_agent.gpu.factory import make_backend
    from gpulane_agent.gpu.fake_spec import FakeSpecError
    from gpulane_agent.settings import ENV_CONFIG_FILE, SettingsError, load_config

    try:
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    except ValueError as exc:
        print(f"gpulane agent: --log-level: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(args.config or os.environ.get(ENV_CONFIG_FILE), os.environ, flags_from_args(args))
        backend = make_backend(config.backend, config.node_name, proc_root=config.enforcement.proc_root)
    except (SettingsError, FakeSpecError, BackendInitError) as exc:
        print(f"gpulane agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from gpulane_agent.agent import Agent
    from gpulane_agent.kube.client import AsyncDraKube, AsyncKube, connect

    kubeconfig = config.kubernetes.kubeconfig

    async def factory() -> Any:
        return await connect(kubeconfig)

    def dra_kube_of(kube: Any) -> AsyncDraKube | None:
        return AsyncDraKube(kube.api_client) if isinstance(kube, AsyncKube) else None

    agent = Agent(config, backend, factory, dra_kube_of)

    async def main() -> None:
        import signal

        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # the kubelet stops pods with SIGTERM
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()

    asyncio.run(main())
    return 0
