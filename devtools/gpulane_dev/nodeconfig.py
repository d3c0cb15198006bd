"""Configuration files of one real node: its containerd, CNI network and kubelet (pure text builders).

Every real node of the dev cluster runs its own containerd and kubelet inside a private mount
namespace (nodehost.py), in which the standard paths are bind-mounted from the node's own directory:
`/var/lib/kubelet`, `/run/containerd`, `/run/gpulane`, `/run/netns` and `/run/cdi`. So the kubelet's fixed device-plugin
directory (`/var/lib/kubelet/device-plugins`, which ignores --root-dir), the containerd socket and the
hostPaths in gpulane's chart are the same strings a production node uses, and several nodes on one
machine never see each other's sockets or containers (two kubelets on one containerd would kill each
other's pods as orphans). The facts and the one trap (`restrict_oom_score_adj`) are in
shared/reference/real-node.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

KUBELET_DIR = Path("/var/lib/kubelet")
CONTAINERD_RUN_DIR = Path("/run/containerd")
GPULANE_RUN_DIR = Path("/run/gpulane")
CONTAINERD_SOCKET = CONTAINERD_RUN_DIR / "containerd.sock"
CNI_BIN_DIR = Path("/usr/lib/cni")
NETNS_DIR = Path("/run/netns")
CDI_DIR = Path("/run/cdi")  # /var/run/cdi, where DRA drivers write CDI specs for containerd


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """Where one real node keeps everything; all of it under `root` (removed by `down`)."""

    name: str
    root: Path

    @property
    def kubelet_dir(self) -> Path:  # bind-mounted at /var/lib/kubelet inside the node's namespace
        return self.root / "kubelet"

    @property
    def containerd_run(self) -> Path:  # at /run/containerd
        return self.root / "run-containerd"

    @property
    def gpulane_run(self) -> Path:  # at /run/gpulane
        return self.root / "run-gpulane"

    @property
    def netns_dir(self) -> Path:  # at /run/netns: the pods' network namespaces (CNI) stay the node's own
        return self.root / "netns"

    @property
    def cdi_dir(self) -> Path:  # at /run/cdi
        return self.root / "cdi"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def binds(self) -> tuple[tuple[Path, Path], ...]:
        """(node's directory, standard path) pairs mounted inside the node's namespace."""
        return (
            (self.kubelet_dir, KUBELET_DIR),
            (self.containerd_run, CONTAINERD_RUN_DIR),
            (self.gpulane_run, GPULANE_RUN_DIR),
            (self.netns_dir, NETNS_DIR),
            (self.cdi_dir, CDI_DIR),
        )

    def directories(self) -> tuple[Path, ...]:
        return (self.kubelet_dir, self.containerd_run, self.gpulane_run, self.netns_dir, self.cdi_dir, self.containerd_root,
                self.containerd_state, self.cni_conf_dir, self.config_dir, self.logs)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeNetwork:
    """The node's pod network: a bridge and a /24 from the 10.244.0.0/16 pod range, one per node slot."""

    index: int

    @property
    def bridge(self) -> str:
        return f"gl-cni{self.index}"

    @property
    def subnet(self) -> str:
        return f"10.244.{self.index}.0/24"


def containerd_config(layout: NodeLayout, network: NodeNetwork, sandbox_image: str, major: int = 2) -> str:
    """This node's containerd config; CRI on the standard socket path. `major`: containerd 2.x (config
    version 3, the CRI plugin split into images and runtime) or 1.x (Debian's 1.6, config version 2)."""
    if major < 2:
        return _containerd_1_config(layout, sandbox_image)
    return f"""version = 3
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"

[grpc]
  address = "{CONTAINERD_SOCKET}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{sandbox_image}"

[plugins."io.containerd.cri.v1.runtime"]
  # Required here: processes are root but lack CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  # CDI is always on in 2.x: DRA drivers' prepared devices reach the container through these specs.
  cdi_spec_dirs = ["/etc/cdi", "{CDI_DIR}"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{layout.cni_conf_dir}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def _containerd_1_config(layout: NodeLayout, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2). It has no CDI: DRA-prepared devices do not reach containers."""
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"

[grpc]
  address = "{CONTAINERD_SOCKET}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # Required here: processes are root but lack CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
"""


def cni_conflist(network: NodeNetwork) -> str:
    """A bridge network with host-local addresses; no masquerade: pods never talk off this machine."""
    config = {
        "cniVersion": "1.0.0",
        "name": f"gpulane-{network.index}",
        "plugins": [
            {
                "type": "bridge", "bridge": network.bridge, "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": network.subnet}]],
                         "routes": [{"dst": "0.0.0.0/0"}]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }  # fmt: skip
    return json.dumps(config, indent=2)


@dataclass(frozen=True, slots=True)
class KubeletPorts:
    port: int
    healthz: int


def kubelet_config(layout: NodeLayout, ports: KubeletPorts, ca_cert: Path, serving: tuple[Path, Path],
                   address: str, cgroup_root: str) -> str:  # fmt: skip
    """KubeletConfiguration for a test node: cgroupfs, own cgroup root, client-CA and webhook auth."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        # Each node's pods under its own cgroup tree: a kubelet removes pod cgroups it does not know.
        "cgroupRoot": cgroup_root,
        # This machine has cgroup v1 hierarchies (with cgroup2 at /sys/fs/cgroup/unified).
        "failCgroupV1": False,
        "failSwapOn": False,
        "address": address,
        "port": ports.port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.healthz,
        "readOnlyPort": 0,
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "resolvConf": "",
        "clusterDomain": "cluster.local",
        "serializeImagePulls": False,
        # Fast status for tests: node heartbeats every 5 s, pod status sync every 2 s.
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "localStorageCapacityIsolation": False,
        "shutdownGracePeriod": "0s",
    }
    return yaml.safe_dump(config, sort_keys=False)
