"""Real nodes for the dev cluster: kube-controller-manager, kube-scheduler, and per node containerd + a kubelet.

Each node runs in namespaces of its own (nodehost.py) with the standard paths bind-mounted from its
directory (nodeconfig.py), so the agent's DaemonSet, the device-plugin socket and the chart's hostPaths
are exactly those of a production node. Node `i` is `<prefix>-<i>` at 10.250.<i>.2; its kubelet and
pods reach the API at 10.0.0.1:443 through an nsforward process. kube-controller-manager (service
accounts and their tokens, Deployments, DaemonSets, garbage collection, node lifecycle) and
kube-scheduler (every pod that is not gpulane's) run on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpulane_dev import images, nodeconfig, nodehost, pki, procs
from gpulane_dev.binaries import Binaries
from gpulane_dev.commands import CommandFailed, Reporter, run
from gpulane_dev.controlplane import ControlPlane, kubeconfig_text

SERVICE_URL = f"https://{nodehost.SERVICE_IP}:443"
AGENT_METRICS_PORT = 9400
# Node lifecycle: NotReady 20 s after the last heartbeat (kubelets beat every 5 s here), not 50 s.
NODE_MONITOR_GRACE = "20s"
KUBELET_ARGV_FILE = "kubelet.argv.json"


@dataclass(frozen=True, slots=True)
class RealNodeOptions:
    count: int
    gpus_per_node: int = 2
    gpu_memory_mib: int = 16384
    prefix: str = "gpulane-real"
    agents: bool = True
    repo: Path = Path(".")
    runtime: nodehost.NodeRuntime | None = None  # None: the containerd in `Binaries`

    def __post_init__(self) -> None:
        if not 0 <= self.count <= 16:
            raise nodehost.NodeHostError(f"--real-nodes: {self.count} must be between 0 and 16")


@dataclass(frozen=True, slots=True)
class RealNodeRecord:
    """What `down` needs to tear a node down: its name, slot, directory and namespace holder."""

    name: str
    slot: int  # machine-wide: its network namespace, addresses 10.250.<slot>.x and cgroup root
    root: str
    holder_pid: int
    kubelet_port: int
    metrics_url: str = ""

    @property
    def layout(self) -> nodeconfig.NodeLayout:
        return nodeconfig.NodeLayout(self.name, Path(self.root))


def controller_manager_argv(binary: Path, plane: ControlPlane) -> tuple[str, ...]:
    return (
        str(binary), f"--kubeconfig={plane.kubeconfig}",
        f"--service-account-private-key-file={plane.pki.sa_private}", f"--root-ca-file={plane.pki.ca_cert}",
        "--leader-elect=false", "--secure-port=0", "--controllers=*",
        f"--node-monitor-grace-period={NODE_MONITOR_GRACE}", "--node-monitor-period=2s",
        "--concurrent-deployment-syncs=5",
    )  # fmt: skip


def scheduler_argv(binary: Path, plane: ControlPlane) -> tuple[str, ...]:
    return (str(binary), f"--kubeconfig={plane.kubeconfig}", "--leader-elect=false", "--secure-port=0")


def node_runtime(binaries: Binaries, containerd: Path | None = None) -> nodehost.NodeRuntime:
    """The containerd real nodes run: `containerd` when given (a test's or a user's own), else the
    tools' (the cache's 2.x build or the dev setting); its shim and ctr come from `binaries` either way
    when none sits beside it."""
    if containerd is None:
        return nodehost.NodeRuntime(binaries.containerd, binaries.containerd_shim, binaries.ctr)
    shim = containerd.parent / binaries.containerd_shim.name
    return nodehost.NodeRuntime(containerd, shim if shim.exists() else binaries.containerd_shim, binaries.ctr)


def start_cluster_services(binaries: Binaries, plane: ControlPlane, run_dir: Path, *,
                           die_with_parent: bool) -> list[procs.Supervised]:  # fmt: skip
    started = []
    for name, argv in (
        ("kube-controller-manager", controller_manager_argv(binaries.kube_controller_manager, plane)),
        ("kube-scheduler", scheduler_argv(binaries.kube_scheduler, plane)),
    ):
        started.append(procs.start(procs.ProcessSpec(name, argv, run_dir / "logs" / f"{name}.log"),
                                   die_with_parent=die_with_parent))  # fmt: skip
    return started


def node_kubeconfig(plane: ControlPlane, path: Path) -> Path:
    """The admin kubeconfig pointed at the Service address the node's namespace forwards to the API."""
    raw: Any = yaml.safe_load(kubeconfig_text(SERVICE_URL, plane.pki))
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    path.chmod(0o600)
    return path


def fake_spec_text(gpus: int, gpu_memory_mib: int, model: str) -> str:
    return yaml.safe_dump({"version": "v1", "gpus": [{"model": model, "memory": f"{gpu_memory_mib}Mi", "count": gpus}]})


def kubelet_argv(binary: Path, layout: nodeconfig.NodeLayout, net: nodehost.NodeNet, kubeconfig: Path,
                 config: Path, labels: dict[str, str]) -> tuple[str, ...]:  # fmt: skip
    label_arg = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return (
        str(binary), f"--config={config}", f"--kubeconfig={kubeconfig}", f"--hostname-override={layout.name}",
        f"--node-ip={net.node_ip}", f"--node-labels={label_arg}", "--v=1",
    )  # fmt: skip


def node_labels(options: RealNodeOptions) -> dict[str, str]:
    model = f"Fake-GPU-{options.gpu_memory_mib // 1024}G"
    return {
        "gpulane.dev/fake-gpu": "true", "gpulane.dev/real-node": "true", "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": model,
        "nvidia.com/gpu.memory": str(options.gpu_memory_mib), "nvidia.com/gpu.count": str(options.gpus_per_node),
    }  # fmt: skip


@dataclass(slots=True)
class StartedNode:
    record: RealNodeRecord
    processes: list[procs.Supervised]


def start_node(index: int, options: RealNodeOptions, binaries: Binaries, plane: ControlPlane, state_dir: Path,
               built: Sequence[images.BuiltImage], reporter: Reporter, *, die_with_parent: bool) -> StartedNode:  # fmt: skip
    """Namespaces, containerd (images imported), kubelet and optionally the agent of node `index`."""
    name = f"{options.prefix}-{index}"
    layout = nodeconfig.NodeLayout(name, state_dir / "nodes" / name)
    shutil.rmtree(layout.root, ignore_errors=True)
    for directory in layout.directories():
        directory.mkdir(parents=True, exist_ok=True)
    net = nodehost.claim_netns()
    cgroup = nodehost.cgroup_name(net.index)
    running: list[procs.Supervised] = []

    try:
        holder = procs.start(node_process(layout, "namespace", nodehost.holder_argv(layout, net)), die_with_parent=die_with_parent)
        running.append(holder)
        # A whole line: the log's first line is the command itself, which contains the same word.
        procs.wait_until(lambda: nodehost.READY_LINE in holder.log_tail().splitlines(),
                         what=f"{name}'s mount namespace", timeout=30, watch=[holder])  # fmt: skip
        forward = (sys.executable, "-m", "gpulane_dev.nsforward", str(net.netns_path), f"{nodehost.SERVICE_IP}:443",
                   str(plane.server.rsplit(":", 1)[1]))  # fmt: skip
        running.append(procs.start(node_process(layout, "apiserver-forward", forward), die_with_parent=die_with_parent))
        network = nodeconfig.NodeNetwork(net.index)
        runtime = options.runtime or node_runtime(binaries)
        major = nodehost.containerd_major(run([str(runtime.containerd), "--version"], timeout=20)) or 2
        containerd_toml = layout.config_dir / "containerd.toml"
        containerd_toml.write_text(nodeconfig.containerd_config(layout, network, images.PAUSE_IMAGE, major))
        (layout.cni_conf_dir / "10-gpulane.conflist").write_text(nodeconfig.cni_conflist(network))
        argv = nodehost.in_node(holder.pid, [str(runtime.containerd), "--config", str(containerd_toml)])
        containerd = procs.start(node_process(layout, "containerd", argv, runtime.path_env()), die_with_parent=die_with_parent)
        running.append(containerd)
        procs.wait_until(lambda: (layout.containerd_run / "containerd.sock").exists(), what=f"{name}'s containerd socket",
                         timeout=60, watch=[containerd])  # fmt: skip
        started = time.monotonic()
        for image in built:
            run(list(nodehost.in_node(holder.pid, [str(runtime.ctr), "-n", "k8s.io", "images", "import", str(image.archive)])),
                log=layout.logs / "images.log", timeout=600)  # fmt: skip
        reporter.say(f"{name}: images imported into containerd in {time.monotonic() - started:.1f}s")
        kubelet_port = procs.free_port()
        cert, key = pki.issue_serving_cert(plane.pki, layout.config_dir, name, (net.node_ip,))
        config = layout.config_dir / "kubelet.yaml"
        config.write_text(nodeconfig.kubelet_config(
            layout, nodeconfig.KubeletPorts(kubelet_port, procs.free_port()), plane.pki.ca_cert, (cert, key), net.node_ip,
            f"/gpulane/{cgroup}"))
        kubeconfig = node_kubeconfig(plane, layout.config_dir / "kubeconfig")
        nodehost.create_cgroups(cgroup)
        argv = kubelet_argv(binaries.kubelet, layout, net, kubeconfig, config, node_labels(options))
        (layout.config_dir / KUBELET_ARGV_FILE).write_text(json.dumps(argv))  # for `dev-cluster kubelet start`
        running.append(procs.start(node_process(layout, "kubelet", nodehost.in_node(holder.pid, argv)), die_with_parent=die_with_parent))
        metrics_url = ""
        if options.agents:
            fake = layout.config_dir / "fake-gpus.yaml"
            fake.write_text(fake_spec_text(options.gpus_per_node, options.gpu_memory_mib, node_labels(options)["nvidia.com/gpu.product"]))
            agent = (sys.executable, "-m", "gpulane_core.cli", "agent", "--backend", "fake", "--fake-config", str(fake),
                     "--node-name", name, "--kubeconfig", str(kubeconfig), "--metrics-port", str(AGENT_METRICS_PORT),
                     "--device-plugin-dir", "/var/lib/kubelet/device-plugins",
                     "--coordinator-socket", f"{nodeconfig.GPULANE_RUN_DIR}/coordinator.sock")  # fmt: skip
            running.append(procs.start(node_process(layout, "agent", nodehost.in_node(holder.pid, agent),
                                            {"GPULANE_AGENT_METRICS_ADDRESS": net.node_ip}),
                                       die_with_parent=die_with_parent))  # fmt: skip
            metrics_url = f"http://{net.node_ip}:{AGENT_METRICS_PORT}/metrics"
        record = RealNodeRecord(name, net.index, str(layout.root), holder.pid, kubelet_port, metrics_url)
        return StartedNode(record, running)
    except BaseException:
        for proc in reversed(running):
            proc.stop(timeout=5.0)
        teardown(RealNodeRecord(name, net.index, str(layout.root), 0, 0))
        raise


def wait_ready(kubeconfig: Path, names: Sequence[str], watch: Sequence[procs.Supervised], timeout: float) -> float:
    """Wait until every real node registered and is Ready; fail early when one of `watch` exits."""
    from kubernetes import client

    from gpulane_dev.fakenodes import node_ready
    from gpulane_dev.kubeclient import connected

    with connected(kubeconfig) as api:
        core = client.CoreV1Api(api)

        def all_ready() -> bool:
            ready = {n.metadata.name for n in core.list_node().items if n.metadata and node_ready(n)}
            return all(name in ready for name in names)

        return procs.wait_until(all_ready, what=f"real nodes {', '.join(names)} to register and be Ready",
                                timeout=timeout, watch=watch)  # fmt: skip


def process_record(proc: procs.Supervised) -> procs.ProcessRecord:
    """A record naming the program the process ends up running (nsenter/unshare exec it in place)."""
    return procs.ProcessRecord(proc.name, proc.pid, nodehost.final_executable(proc.spec.argv), str(proc.spec.log))


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_mount_ns(ns: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _mount_ns(int(entry.name)) == ns:
            found.append(int(entry.name))
    return found


def _cgroup_pids(cgroup: str) -> set[int]:
    pids: set[int] = set()
    for tree in nodehost.cgroup_trees(cgroup):
        for procs_file in tree.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs_file.read_text().split())
    return pids


def _kill(pids: set[int] | list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def teardown(record: RealNodeRecord, timeout: float = 30.0) -> None:
    """Leave nothing of the node: containers, shims, its namespaces, cgroups, veth and directory.

    Its kubelet, containerd and agent were stopped by the caller from their process records; what
    is left are container processes (in the node's cgroups) and containerd shims (in its mount namespace).
    """
    ns = _mount_ns(record.holder_pid) if record.holder_pid else None
    deadline = time.monotonic() + timeout
    while True:
        victims = _cgroup_pids(nodehost.cgroup_name(record.slot))
        if ns is not None:
            victims.update(p for p in _pids_in_mount_ns(ns) if p != record.holder_pid)
        if not victims or time.monotonic() > deadline:
            break
        _kill(victims)
        time.sleep(0.2)
    if record.holder_pid and ns is not None:
        _kill([record.holder_pid])
    nodehost.delete_netns(nodehost.NodeNet(record.slot))
    nodehost.remove_cgroups(nodehost.cgroup_name(record.slot))
    _release_netns_dir()
    shutil.rmtree(record.root, ignore_errors=True)


def _release_netns_dir() -> None:
    """`ip netns add` made /run/netns a mount of itself; undo that once no namespace is left in it."""
    netns_dir = nodehost.NETNS_DIR
    if netns_dir.is_dir() and not any(netns_dir.iterdir()):
        with contextlib.suppress(CommandFailed):
            run(["umount", str(netns_dir)], timeout=30)


def process_name(proc_name: str, node: str) -> str:
    """How a node's process is named in messages and in the state file: `kubelet/gpulane-real-0`."""
    return f"{proc_name}/{node}"


def node_process(layout: nodeconfig.NodeLayout, proc_name: str, argv: Sequence[str],
                 env: dict[str, str] | None = None) -> procs.ProcessSpec:  # fmt: skip
    return procs.ProcessSpec(process_name(proc_name, layout.name), tuple(argv), layout.logs / f"{proc_name}.log",
                             env=env or {})  # fmt: skip


def start_kubelet(record: RealNodeRecord) -> procs.Supervised:
    """Start the node's kubelet again, with the command line `start_node` gave it, in the node's namespaces."""
    argv = json.loads((record.layout.config_dir / KUBELET_ARGV_FILE).read_text())
    spec = node_process(record.layout, "kubelet", nodehost.in_node(record.holder_pid, argv))
    return procs.start(spec, die_with_parent=False)
