"""The node's lanes as the agent sees them: pure functions from pods (annotations) and measured usage.

The operator's annotations are authoritative for who is in which lane and how large it is; the agent
adds what it measures (memory used per pod container and GPU, and per lane). A multi-GPU job holds the
same lane id on each of its GPUs, with the same size and a per-GPU memory limit. A finished or deleted pod drops out here,
which is how its lane is released from the inventory and the metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpulane_core import podcontract as ann

from gpulane_agent.kube.api import PodView


@dataclass(frozen=True, slots=True)
class PodLane:
    """One running pod's place: its GPUs (a multi-GPU job has its lane on each), lane, size and limit."""

    namespace: str
    pod: str
    uid: str
    gpu_indices: tuple[int, ...]
    gpu_uuids: tuple[str, ...]  # same order as gpu_indices
    lane: str
    lane_size_mib: int
    limit_mib: int  # per GPU: gpulane.dev/memory-limit-mib as written by the operator
    job: str
    container_ids: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class LaneView:
    gpu_index: int
    gpu_uuid: str
    lane: str
    size_mib: int
    used_bytes: int
    jobs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """Measured memory of one pod container on one GPU (``container`` empty when the runtime id is unknown)."""

    uid: str
    container: str
    gpu_uuid: str
    used_bytes: int


@dataclass(frozen=True, slots=True)
class NodeView:
    """Everything the exporter and the inventory need, computed once per agent tick."""

    pod_lanes: tuple[PodLane, ...] = ()
    usage: tuple[ContainerUsage, ...] = ()
    lanes: tuple[LaneView, ...] = ()


class ViewHolder:
    """The latest NodeView; replaced whole, so readers in other threads see a consistent value."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view = NodeView()

    @property
    def current(self) -> NodeView:
        with self._lock:
            return self._view

    def publish(self, view: NodeView) -> None:
        with self._lock:
            self._view = view


def pod_lanes(pods: Iterable[PodView], node_name: str) -> tuple[PodLane, ...]:
    """Pods of this node that hold a lane now: assigned here, not finished, not being deleted.

    The assignment is read through ``gpulane_core.podcontract``; a pod whose annotations cannot be
    read is skipped here (Allocate refuses it, naming the annotation).
    """
    out: list[PodLane] = []
    for pod in pods:
        if pod.finished or pod.deleting:
            continue
        try:
            a = ann.from_annotations(ann.pod_job(pod.namespace, pod.name, pod.labels), pod.annotations)
            limit_mib = ann.written_memory_limit_mib(pod.annotations)
        except ann.AnnotationError:
            continue
        if a.node != node_name:
            continue
        out.append(
            PodLane(
                namespace=pod.namespace,
                pod=pod.name,
                uid=pod.uid,
                gpu_indices=a.gpu_indices,
                gpu_uuids=a.gpu_uuids,
                lane=a.lane,
                lane_size_mib=a.lane_size_mib,
                limit_mib=limit_mib,
                job=a.job,
                container_ids=dict(pod.container_ids),
            )
        )
    return tuple(sorted(out, key=lambda p: (p.gpu_indices, p.lane, p.namespace, p.pod)))


def lane_views(lanes: Iterable[PodLane], usage: Iterable[ContainerUsage]) -> tuple[LaneView, ...]:
    """Group pods by (GPU, lane), a multi-GPU pod on each of its GPUs: size is the largest size any member
    reports, used the members' memory on that GPU."""
    used: dict[tuple[str, str], int] = {}
    for u in usage:
        used[(u.uid, u.gpu_uuid)] = used.get((u.uid, u.gpu_uuid), 0) + u.used_bytes
    groups: dict[tuple[int, str, str], list[PodLane]] = {}
    for pl in lanes:
        for index, uuid in zip(pl.gpu_indices, pl.gpu_uuids, strict=True):
            groups.setdefault((index, uuid, pl.lane), []).append(pl)
    return tuple(
        LaneView(
            gpu_index=index,
            gpu_uuid=gpu_uuid,
            lane=lane,
            size_mib=max(m.lane_size_mib for m in members),
            used_bytes=sum(used.get((m.uid, gpu_uuid), 0) for m in members),
            jobs=tuple(sorted({m.job for m in members})),
        )
        for (index, gpu_uuid, lane), members in sorted(groups.items())
    )
