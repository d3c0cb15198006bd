"""Shared builders for the agent's unit tests: pods with operator annotations, fake specs, proc trees."""

from __future__ import annotations

from pathlib import Path

from gpulane_agent.kube.api import PodView
from gpulane_core import podcontract as ann

NODE = "node-a"


def assigned_pod(
    name: str,
    *,
    uid: str = "",
    node: str = NODE,
    gpu_index: int = 0,
    gpu_uuid: str = "GPU-aaaa",
    lane: str = "lane-1",
    lane_size_mib: int = 2048,
    persistent_mib: int = 1024,
    ephemeral_mib: int = 2048,
    limit_mib: int = 3072,
    charge_units: int = 12,
    allocated: bool = False,
    namespace: str = "team",
    phase: str = "Pending",
    job: str = "",
    container_ids: dict[str, str] | None = None,
    gpus: tuple[tuple[int, str], ...] = (),
) -> PodView:
    """A pod as the operator annotates it; ``gpus`` ((index, uuid), ...) for a multi-GPU job."""
    gpus = gpus or ((gpu_index, gpu_uuid),)
    annotations = {
        ann.NODE: node,
        ann.GPU_INDEX: ",".join(str(i) for i, _ in gpus),
        ann.GPU_UUID: ",".join(u for _, u in gpus),
        ann.LANE: lane,
        ann.LANE_SIZE_MIB: str(lane_size_mib),
        ann.PERSISTENT_MIB: str(persistent_mib),
        ann.EPHEMERAL_MIB: str(ephemeral_mib),
        ann.MEMORY_LIMIT_MIB: str(limit_mib),
        ann.CHARGE_UNITS: str(charge_units),
        ann.CLASS: "guaranteed",
    }
    if allocated:
        annotations[ann.ALLOCATED] = "true"
    return PodView(
        namespace=namespace,
        name=name,
        uid=uid or f"{abs(hash(name)) % 10**8:08d}-0000-4000-8000-000000000000",
        node_name=node,
        phase=phase,
        annotations=annotations,
        labels={"app.kubernetes.io/managed-by": "gpulane", ann.LABEL_JOB: job or name},
        container_ids=container_ids or {},
    )


def write_proc(root: Path, pid: int, pod_uid: str, container_id: str = "", systemd: bool = False) -> None:
    """A /proc/<pid>/cgroup file as the kubelet's cgroup layout would produce it."""
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    if systemd:
        scope = f"cri-containerd-{container_id}.scope" if container_id else ""
        path = (
            "/kubepods.slice/kubepods-burstable.slice/"
            f"kubepods-burstable-pod{pod_uid.replace('-', '_')}.slice/{scope}"
        )
        (d / "cgroup").write_text(f"0::{path}\n")
    else:
        (d / "cgroup").write_text(
            f"12:memory:/kubepods/burstable/pod{pod_uid}/{container_id}\n11:cpu:/kubepods/burstable/pod{pod_uid}/{container_id}\n"
        )
