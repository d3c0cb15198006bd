"""What a real node needs from this machine, and the namespaces each node lives in.

Prerequisites (`check` / `ensure_packages`): runc, the CNI plugins, busybox and mmdebstrap from Debian,
containerd 2.x (built into the cache by `gpulane_dev.binaries`, or the dev setting `containerd`), plus
util-linux's unshare/nsenter, iproute2 and root. A missing piece is named in one error before anything
starts.

Namespaces: every node gets a network namespace (`ip netns add`), with a veth pair to the root
namespace (10.250.<i>.1 here, 10.250.<i>.2 in the node) and the `kubernetes` Service address 10.0.0.1
on the node's loopback, and a private mount namespace held by a `sleep` process, in which the node's
directories are bind-mounted at the standard paths (nodeconfig.NodeLayout.binds). containerd, the
kubelet and the node's agent are started inside both with nsenter. `teardown` removes the veth, the
namespace and the node's cgroup trees; the mount namespace ends with its last process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpulane_dev import aptget
from gpulane_dev.commands import CommandFailed, Reporter, run
from gpulane_dev.nodeconfig import NodeLayout, NodeNetwork
from gpulane_dev.settings import CacheLayout

NODE_PACKAGES: tuple[str, ...] = ("runc", "containernetworking-plugins", "busybox-static", "mmdebstrap")
# What each package provides, checked after installing.
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "runc": ("/usr/sbin/runc",),
    "containernetworking-plugins": ("/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback",
                                    "/usr/lib/cni/portmap"),
    "busybox-static": ("/bin/busybox",),
    "mmdebstrap": ("/usr/bin/mmdebstrap",),
}  # fmt: skip
HOST_TOOLS: tuple[str, ...] = ("unshare", "nsenter", "ip", "mount")
SERVICE_IP = "10.0.0.1"
READY_LINE = "namespace-ready"  # the holder prints it, alone on a line, once every bind mount is in place
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class NodeHostError(RuntimeError):
    """This machine cannot run a real node; the message names the missing piece."""


_CONTAINERD_VERSION = re.compile(r"\sv?(\d+)\.(\d+)\.\d+")


@dataclass(frozen=True, slots=True)
class NodeRuntime:
    """The containerd a real node runs: the daemon, the runc shim it starts (found on PATH: its directory
    goes first there) and the ctr that imports the images."""

    containerd: Path
    shim: Path
    ctr: Path

    def path_env(self) -> dict[str, str]:
        return {"PATH": f"{self.shim.parent}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}


def containerd_major(version_line: str) -> int | None:
    """2 from `containerd github.com/containerd/containerd/v2 2.4.2+unknown`, 1 from Debian's `... 1.6.20~ds1`."""
    match = _CONTAINERD_VERSION.search(version_line)
    return int(match.group(1)) if match else None
# Programs that must not only exist but start: a binary for another architecture or a broken install
# fails here, before any process of the cluster starts.
RUN_CHECKS: tuple[tuple[str, str], ...] = (("runc", "/usr/sbin/runc"),)


def runs(program: str, argv: Sequence[str]) -> str | None:
    """None when `argv` (a `--version` call) exits 0; else why `program` cannot run."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        return f"{program} cannot run: {argv[0]}: {exc.strerror or exc}"
    except subprocess.TimeoutExpired:
        return f"{program} cannot run: `{' '.join(argv)}` did not answer in 20s"
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return f"{program} cannot run: `{' '.join(argv)}` exited with status {proc.returncode}: {said[0]}"
    return None


def missing_pieces(runtime: NodeRuntime) -> list[str]:
    """What is absent or broken for real nodes, each named with the package or setting that provides it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("root (real nodes mount, create network namespaces and run containerd)")
    for package, files in REQUIRED_FILES.items():
        absent = [f for f in files if not Path(f).exists()]
        if absent:
            problems.append(f"{', '.join(absent)} (Debian package {package})")
    for binary in (runtime.containerd, runtime.shim, runtime.ctr):
        if not binary.exists():
            problems.append(f"{binary} (`make binaries` builds containerd into the cache; or the dev setting "
                            "containerd, GPULANE_DEV_CONTAINERD, names your own)")
    for tool in HOST_TOOLS:
        if shutil.which(tool) is None:
            problems.append(f"{tool} (util-linux / iproute2)")
    if not Path("/proc/filesystems").exists() or "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("the overlay filesystem (containerd's overlayfs snapshotter; modprobe overlay)")
    for program, path in (("containerd", str(runtime.containerd)), *RUN_CHECKS):
        if Path(path).exists():
            broken = runs(program, [path, "--version"])
            if broken:
                problems.append(broken)
    return problems


def ensure_packages(cache: CacheLayout, reporter: Reporter, runtime: NodeRuntime) -> None:
    """Install the Debian packages that are missing (root only), then check every piece (nothing runs yet)."""
    wanted = [p for p, files in REQUIRED_FILES.items() if not all(Path(f).exists() for f in files)]
    if wanted and os.geteuid() == 0 and shutil.which("apt-get"):
        aptget.install_packages(wanted, cache, reporter, why="real nodes need them")
    problems = missing_pieces(runtime)
    if problems:
        raise NodeHostError("--real-nodes cannot run on this machine; missing: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class NodeNet:
    """One node's network namespace and veth pair."""

    index: int

    @property
    def netns(self) -> str:
        return f"gpulane-node{self.index}"

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def host_veth(self) -> str:
        return f"glh{self.index}"

    @property
    def node_veth(self) -> str:
        return f"gln{self.index}"

    @property
    def host_ip(self) -> str:
        return f"10.250.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.250.{self.index}.2"

    @property
    def pod_subnet(self) -> str:
        """The node's pod CIDR: the range its CNI bridge hands out."""
        return NodeNetwork(self.index).subnet


def _ip(*args: str) -> None:
    run(["ip", *args], timeout=30)


MAX_SLOTS = 64


def claim_netns() -> NodeNet:
    """Create the network namespace of the lowest free slot (so several dev clusters can coexist)."""
    for slot in range(MAX_SLOTS):
        net = NodeNet(slot)
        proc = subprocess.run(["ip", "netns", "add", net.netns], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            _wire_netns(net)
            return net
        if "File exists" not in proc.stderr:
            raise NodeHostError(f"ip netns add {net.netns}: {proc.stderr.strip()}")
    raise NodeHostError(f"all {MAX_SLOTS} real-node slots are taken (ip netns list); stop other dev clusters")


def _wire_netns(net: NodeNet) -> None:
    """lo up with the Service address, a veth to the root namespace, a route to the node's pods."""
    try:
        inside = ("netns", "exec", net.netns, "ip")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "addr", "add", f"{SERVICE_IP}/32", "dev", "lo")
        _ip("link", "add", net.host_veth, "type", "veth", "peer", "name", net.node_veth)
        _ip("link", "set", net.node_veth, "netns", net.netns)
        _ip("addr", "add", f"{net.host_ip}/24", "dev", net.host_veth)
        _ip("link", "set", net.host_veth, "up")
        _ip(*inside, "addr", "add", f"{net.node_ip}/24", "dev", net.node_veth)
        _ip(*inside, "link", "set", net.node_veth, "up")
        _ip(*inside, "route", "add", "default", "via", net.host_ip)
        # Pod addresses (the node's CNI bridge) are reachable from here: Prometheus and tests scrape them.
        _ip("route", "add", net.pod_subnet, "via", net.node_ip)
        run(["nsenter", f"--net={net.netns_path}", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], timeout=30)
    except CommandFailed:
        delete_netns(net)
        raise


def delete_netns(net: NodeNet) -> bool:
    """Remove the veth and the namespace (idempotent); True when something was removed."""
    removed = False
    for argv in (["ip", "link", "delete", net.host_veth], ["ip", "netns", "delete", net.netns]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        removed = removed or proc.returncode == 0
    return removed


def holder_argv(layout: NodeLayout, net: NodeNet) -> tuple[str, ...]:
    """A process that owns the node's mount namespace (inside its network namespace) and sleeps."""
    binds = " && ".join(f"mkdir -p {target} && mount --bind {source} {target}" for source, target in layout.binds())
    script = f"{binds} && echo {READY_LINE} && exec sleep infinity"
    # nsenter, not `ip netns exec`: the latter remounts /sys, which hides the cgroup hierarchies runc needs.
    return ("nsenter", f"--net={net.netns_path}", "unshare", "--mount", "--propagation", "private", "sh", "-c", script)


def final_executable(argv: Sequence[str]) -> str:
    """argv[0] of what `argv` runs once nsenter, unshare and sh have exec'd in place."""
    if argv and argv[0] == "nsenter" and "--" in argv:
        return final_executable(argv[list(argv).index("--") + 1:])
    if argv and argv[0] == "nsenter" and "unshare" in argv:  # the namespace holder
        return "sleep"
    return argv[0] if argv else ""


def in_node(holder_pid: int, argv: Sequence[str]) -> tuple[str, ...]:
    """`argv` run inside the node's mount and network namespaces (those of its holder process)."""
    return ("nsenter", f"--target={holder_pid}", "--mount", "--net", "--", *argv)


def cgroup_name(slot: int) -> str:
    """The node's kubelet cgroupRoot is /gpulane/<this>: per slot, so clusters never share one."""
    return f"node{slot}"


def cgroup_trees(node_name: str) -> list[Path]:
    """The node's cgroup directories in every mounted hierarchy (kubelet cgroupRoot /gpulane/<name>)."""
    found = []
    if CGROUP_ROOT.is_dir():
        for hierarchy in sorted(CGROUP_ROOT.iterdir()):
            tree = hierarchy / "gpulane" / node_name
            if tree.is_dir():
                found.append(tree)
    return found


def create_cgroups(node_name: str) -> None:
    """The kubelet's cgroupRoot /gpulane/<node> in every hierarchy (the kubelet refuses a missing one).

    A new cgroup-v1 cpuset starts with no CPUs and no memory nodes, so both are copied from the parent.
    """
    for hierarchy in sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir()) if CGROUP_ROOT.is_dir() else []:
        parent = hierarchy
        for part in ("gpulane", node_name):
            child = parent / part
            child.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (parent / knob).exists() and not (child / knob).read_text().strip():
                    (child / knob).write_text((parent / knob).read_text())
            parent = child


def remove_cgroups(node_name: str) -> int:
    """rmdir the node's cgroup trees deepest first (they are empty once its containers stopped)."""
    removed = 0
    for tree in cgroup_trees(node_name):
        for dirpath, _dirs, _files in sorted(os.walk(tree), key=lambda w: -len(w[0])):
            try:
                Path(dirpath).rmdir()
                removed += 1
            except OSError:
                pass
        with contextlib.suppress(OSError):
            tree.parent.rmdir()  # /gpulane itself, once the last node is gone
    return removed
