"""`gpulane dev-cluster up|down|status`: the test control plane, detached, for people.

`up` starts etcd, kube-apiserver and kwok in the background (they outlive the command), installs the
CRDs, creates fake GPU nodes and, unless told not to, one fake-backend node agent per node. Pids,
ports and paths go to `<state-dir>/state.json`, which `down` and `status` read. Processes are
stopped only after checking that their pid still runs the executable recorded for it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import ssl
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import yaml
from gpulane_operator.settings import PeeringSettings

from gpulane_dev import crds, fakenodes, images, nodehost, procs, realnodes
from gpulane_dev.binaries import Binaries
from gpulane_dev.commands import Reporter
from gpulane_dev.controlplane import ControlPlane, ControlPlaneOptions, http_ok
from gpulane_dev.kubeclient import connected

PEERING_NAME = PeeringSettings().name  # the peering object `gpulane operator` uses unless told otherwise
STATE_FILE = "state.json"
STATE_VERSION = 1


class DevClusterError(RuntimeError):
    """The dev cluster cannot be brought up, read or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class UpOptions:
    state_dir: Path
    nodes: int = 2
    gpus_per_node: int = 4
    gpu_memory_mib: int = 16384
    node_prefix: str = "gpu-node"
    crds_dir: Path | None = None
    agents: bool = True
    # None: free loopback ports (several clusters and test sessions can coexist); else base, base+1, ...
    agent_metrics_base_port: int | None = None
    # Real nodes: containerd + kubelet each (realnodes.py), plus kube-controller-manager and kube-scheduler.
    real_nodes: int = 0
    real_gpus_per_node: int = 2
    repo: Path = Path(".")
    containerd: Path | None = None  # None: the containerd in the tools (realnodes.node_runtime)

    def __post_init__(self) -> None:
        if not 0 <= self.real_nodes <= 16:
            raise DevClusterError(f"--real-nodes: {self.real_nodes} must be between 0 and 16")
        if self.nodes < 0:
            raise DevClusterError(f"--nodes: {self.nodes} must be >= 0")
        if self.gpus_per_node < 1:
            raise DevClusterError(f"--gpus-per-node: {self.gpus_per_node} must be >= 1")


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What `up` wrote and `down`/`status` read."""

    kubeconfig: str
    server: str
    admin_token: str
    ca_cert: str
    processes: tuple[procs.ProcessRecord, ...]
    nodes: tuple[str, ...] = ()
    agent_metrics: dict[str, int] = field(default_factory=dict)
    real_nodes: tuple[realnodes.RealNodeRecord, ...] = ()
    version: int = STATE_VERSION

    def to_json(self) -> str:
        raw = asdict(self)
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: Path) -> ClusterState:
        try:
            raw: Any = json.loads(text)
            if raw.get("version") != STATE_VERSION:
                raise DevClusterError(f"{where}: state version {raw.get('version')!r}, expected {STATE_VERSION}")
            records = tuple(procs.ProcessRecord(**p) for p in raw["processes"])
            real = tuple(realnodes.RealNodeRecord(**n) for n in raw.get("real_nodes", ()))
            return cls(
                kubeconfig=raw["kubeconfig"], server=raw["server"], admin_token=raw["admin_token"],
                ca_cert=raw["ca_cert"], processes=records, nodes=tuple(raw.get("nodes", ())),
                agent_metrics=dict(raw.get("agent_metrics", {})), real_nodes=real,
            )  # fmt: skip
        except KeyError as exc:
            raise DevClusterError(f"{where}: unreadable state (missing field {exc}); stop its processes, remove it") from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise DevClusterError(f"{where}: unreadable state ({exc}); stop its processes, remove it") from exc


def read_state(state_dir: Path) -> ClusterState | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    return ClusterState.from_json(path.read_text(), path)


def fake_agent_spec(gpus: int, gpu_memory_mib: int, model: str) -> str:
    """The node agent's fake-backend spec (see gpulane_agent.gpu.fake_spec) for one fake node."""
    return yaml.safe_dump({"version": "v1", "gpus": [{"model": model, "memory": f"{gpu_memory_mib}Mi", "count": gpus}]})


def socket_dir(state_dir: Path) -> Path:
    """A short per-cluster directory for unix sockets (sun_path holds at most 107 bytes)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"gpulane-dc-{digest}"


def metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def agent_argv(node: str, spec_file: Path, kubeconfig: Path, port: int, sockets: Path) -> tuple[str, ...]:
    return (
        sys.executable, "-m", "gpulane_core.cli", "agent",
        "--backend", "fake", "--fake-config", str(spec_file), "--node-name", node,
        "--kubeconfig", str(kubeconfig), "--metrics-port", str(port),
        # No kubelet runs locally: device-plugin and coordinator sockets go to a short per-cluster dir.
        "--device-plugin-dir", str(sockets / "device-plugins"),
        "--coordinator-socket", str(sockets / "coordinator.sock"),
    )  # fmt: skip


def up(options: UpOptions, binaries: Binaries, out: TextIO = sys.stderr) -> ClusterState:
    """Start (or report) the dev cluster; the state is written before returning."""
    state_dir = options.state_dir
    existing = read_state(state_dir)
    if existing is not None:
        if all(procs.record_alive(r) for r in existing.processes):
            print(f"dev cluster already running (state {state_dir / STATE_FILE})", file=out)
            return existing
        print("found a stale dev cluster; stopping what is left of it", file=out)
        down(state_dir, out)
    run_dir = state_dir / "run"
    reporter = Reporter(out, "[gpulane dev-cluster]")
    built: tuple[images.BuiltImage, ...] = ()
    runtime = realnodes.node_runtime(binaries, options.containerd)
    if options.real_nodes:
        # Everything a real node needs is checked (and installed) before anything starts.
        nodehost.ensure_packages(binaries_cache(binaries), reporter, runtime)
        built = images.build_all(options.repo, binaries_cache(binaries), reporter)
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh cluster each time: old etcd data is gone
    # Detached: the processes must outlive this command.
    plane = ControlPlane.start(replace(ControlPlaneOptions.from_binaries(binaries, run_dir), die_with_parent=False,
                                       real_nodes=bool(options.real_nodes)))  # fmt: skip
    records = list(plane.records())
    real: list[realnodes.RealNodeRecord] = []
    try:
        print(f"control plane ready in {plane.timings.total_s:.1f}s at {plane.server}", file=out)
        with connected(plane.kubeconfig) as api:
            if options.crds_dir is not None:
                names = crds.install_directory(api, options.crds_dir)
                print(f"CRDs established: {', '.join(names) or '(none found)'}", file=out)
                if crds.PEERING_CRD in names:  # what `gpulane operator` (peered by default) waits for
                    crds.ensure_cluster_peering(api, PEERING_NAME)
                    print(f"ClusterKopfPeering {PEERING_NAME} ready (the operator's default peering)", file=out)
            specs = (
                fakenodes.fleet(options.nodes, options.node_prefix, gpus=options.gpus_per_node,
                                gpu_memory_mib=options.gpu_memory_mib)
                if options.nodes else []
            )  # fmt: skip
            node_names = fakenodes.create(api, specs)
            fakenodes.wait_ready(api, node_names)
            print(f"fake GPU nodes Ready: {', '.join(node_names) or '(none)'}", file=out)
        if options.real_nodes:
            real_options = realnodes.RealNodeOptions(
                options.real_nodes, options.real_gpus_per_node, options.gpu_memory_mib, agents=options.agents,
                runtime=runtime)
            services = realnodes.start_cluster_services(binaries, plane, run_dir, die_with_parent=False)
            records += [s.record() for s in services]
            watch = list(services)
            for index in range(options.real_nodes):
                node = realnodes.start_node(index, real_options, binaries, plane, state_dir, built, reporter,
                                            die_with_parent=False)  # fmt: skip
                real.append(node.record)
                records += [realnodes.process_record(p) for p in node.processes]
                watch += node.processes
            waited = realnodes.wait_ready(plane.kubeconfig, [r.name for r in real], watch, timeout=120.0)
            print(f"real nodes Ready in {waited:.1f}s: {', '.join(r.name for r in real)}", file=out)
        metrics: dict[str, int] = {}
        if options.agents:
            agents: list[procs.Supervised] = []
            for i, spec in enumerate(specs):
                node_dir = run_dir / "agents" / spec.name
                node_dir.mkdir(parents=True, exist_ok=True)
                sockets = socket_dir(state_dir) / spec.name
                sockets.mkdir(parents=True, exist_ok=True)
                spec_file = node_dir / "fake-gpus.yaml"
                spec_file.write_text(fake_agent_spec(spec.gpus, spec.gpu_memory_mib, spec.gpu_product))
                port = procs.free_port() if options.agent_metrics_base_port is None else options.agent_metrics_base_port + i
                agent = procs.start(
                    procs.ProcessSpec(f"agent/{spec.name}", agent_argv(spec.name, spec_file, plane.kubeconfig, port, sockets),
                                      run_dir / "logs" / f"agent-{spec.name}.log",
                                      env={"GPULANE_AGENT_METRICS_ADDRESS": "127.0.0.1"}),
                    die_with_parent=False,
                )  # fmt: skip
                records.append(agent.record())
                agents.append(agent)
                metrics[spec.name] = port
            for agent, port in zip(agents, metrics.values(), strict=True):
                procs.wait_until(
                    functools.partial(metrics_up, port),
                    what=f"{agent.name} metrics on 127.0.0.1:{port}", timeout=60.0, watch=[agent],
                )  # fmt: skip
            for name, port in metrics.items():
                print(f"node agent for {name}: metrics on http://127.0.0.1:{port}/metrics", file=out)
        state = ClusterState(
            kubeconfig=str(plane.kubeconfig), server=plane.server, admin_token=plane.pki.admin_token,
            ca_cert=str(plane.pki.ca_cert), processes=tuple(records), nodes=tuple(node_names), agent_metrics=metrics,
            real_nodes=tuple(real),
        )  # fmt: skip
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / STATE_FILE).write_text(state.to_json())
        return state
    except BaseException:
        for real_node in real:
            realnodes.teardown(real_node)
        for record in reversed(records):
            procs.stop_record(record)
        raise


def binaries_cache(binaries: Binaries) -> Any:
    """The cache layout the binaries came from (images and logs live beside them)."""
    from gpulane_dev.settings import CacheLayout

    return CacheLayout(binaries.kube_apiserver.parent.parent)


def down(state_dir: Path, out: TextIO = sys.stderr) -> int:
    """Stop every process the state records (agents first, etcd last); return how many were running."""
    state = read_state(state_dir)
    if state is None:
        print(f"no dev cluster state in {state_dir}; nothing to stop", file=out)
        return 0
    stopped = 0
    # Real nodes first, while their namespace holders still run: everything in a node's mount namespace
    # (kubelet, containerd, its shims, the agent) and its containers' cgroups go together.
    for node in state.real_nodes:
        realnodes.teardown(node)
        print(f"removed real node {node.name} (containers, namespaces, cgroups, files)", file=out)
    for record in reversed(state.processes):
        if procs.stop_record(record):
            stopped += 1
            print(f"stopped {record.name} (pid {record.pid})", file=out)
        else:
            print(f"{record.name} (pid {record.pid}) was not running", file=out)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(state_dir / "run" / "etcd-data", ignore_errors=True)
    shutil.rmtree(socket_dir(state_dir), ignore_errors=True)
    return stopped


KUBELET_ACTIONS = ("stop", "start", "restart")


def kubelet(state_dir: Path, node: str, action: str, out: TextIO = sys.stderr) -> ClusterState:
    """Stop, start or restart one real node's kubelet (its containers keep running), recording the new pid.

    For fault drills: a stopped kubelet makes its node NotReady after the controller-manager's grace,
    exactly as a crashed kubelet would; `start` brings the same kubelet back on the same node.
    """
    if action not in KUBELET_ACTIONS:
        raise DevClusterError(f"kubelet action {action!r}: must be one of {', '.join(KUBELET_ACTIONS)}")
    state = read_state(state_dir)
    if state is None:
        raise DevClusterError(f"no dev cluster state in {state_dir}; run `gpulane dev-cluster up --real-nodes N` first")
    nodes = {n.name: n for n in state.real_nodes}
    if node not in nodes:
        raise DevClusterError(f"{node!r} is not a real node of this cluster (real nodes: {', '.join(nodes) or 'none'})")
    name = realnodes.process_name("kubelet", node)
    records = list(state.processes)
    at = next((i for i, r in enumerate(records) if r.name == name), None)
    if at is None:
        raise DevClusterError(f"{state_dir / STATE_FILE} records no process {name}")
    if action in ("stop", "restart"):
        if procs.stop_record(records[at]):
            print(f"stopped {name} (pid {records[at].pid}); its containers keep running", file=out)
        elif action == "stop":
            print(f"{name} (pid {records[at].pid}) was not running", file=out)
    if action in ("start", "restart"):
        if procs.record_alive(records[at]):
            raise DevClusterError(f"{name} is already running (pid {records[at].pid})")
        started = realnodes.start_kubelet(nodes[node])
        records[at] = realnodes.process_record(started)
        print(f"started {name} (pid {started.pid}); log {started.spec.log}", file=out)
    state = replace(state, processes=tuple(records))
    (state_dir / STATE_FILE).write_text(state.to_json())
    return state


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    name: str
    pid: int
    running: bool
    log: str


def status(state_dir: Path) -> tuple[ClusterState | None, list[ProcessStatus], bool]:
    """Each recorded process's liveness, and whether the apiserver answers /readyz."""
    state = read_state(state_dir)
    if state is None:
        return None, [], False
    rows = [ProcessStatus(r.name, r.pid, procs.record_alive(r), r.log) for r in state.processes]
    context = ssl.create_default_context(cafile=state.ca_cert) if Path(state.ca_cert).exists() else None
    ready = context is not None and http_ok(f"{state.server}/readyz", context=context, token=state.admin_token)
    return state, rows, ready


def format_status(state: ClusterState | None, rows: Sequence[ProcessStatus], ready: bool) -> str:
    if state is None:
        return "dev cluster: not running (no state)"
    lines = [f"dev cluster: apiserver {state.server} {'ready' if ready else 'NOT ready'}",
             f"kubeconfig: {state.kubeconfig}"]  # fmt: skip
    for r in rows:
        port = state.agent_metrics.get(r.name.removeprefix("agent/")) if r.name.startswith("agent/") else None
        metrics = f"  metrics http://127.0.0.1:{port}/metrics" if port else ""
        lines.append(f"  {r.name:24s} pid {r.pid:<8d} {'running' if r.running else 'STOPPED'}  log {r.log}{metrics}")
    if state.nodes:
        lines.append(f"fake GPU nodes: {', '.join(state.nodes)}")
    return "\n".join(lines)
