"""Which pod (and container) a GPU process belongs to, from its cgroup path.

NVML reports pids in the host pid namespace; the kubelet puts every container in a cgroup whose path
carries the pod UID (``pod<uid>`` with ``-`` or, under the systemd driver, ``_``) and ends with the
container runtime id. The proc root is injectable so tests use a fixture directory, and the agent
reads the host's /proc (hostPID) in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpulane_agent.gpu.backend import GpuProcess
from gpulane_agent.lanes import ContainerUsage, PodLane

_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
_CONTAINER_ID = re.compile(r"(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$")


@dataclass(frozen=True, slots=True)
class CgroupOwner:
    pod_uid: str
    container_id: str  # empty when the path does not end in a runtime id


def owner_from_cgroup(text: str) -> CgroupOwner | None:
    """Parse /proc/<pid>/cgroup content (v1 or v2, cgroupfs or systemd driver); None if not a pod's."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1].strip()
        m = _POD_UID.search(path)
        if not m:
            continue
        uid = m.group(1).replace("_", "-")
        last = path.rstrip("/").rsplit("/", 1)[-1]
        cid = _CONTAINER_ID.search(last)
        return CgroupOwner(pod_uid=uid, container_id=cid.group(1) if cid else "")
    return None


class ProcReader:
    """Reads /proc/<pid>/cgroup under an injectable root."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def owner(self, pid: int) -> CgroupOwner | None:
        try:
            text = (self._root / str(pid) / "cgroup").read_text()
        except OSError:
            return None  # the process exited between the NVML reading and now
        return owner_from_cgroup(text)


def attribute(
    processes: Mapping[str, Iterable[GpuProcess]],
    owners: Mapping[int, CgroupOwner | None],
    lanes: Sequence[PodLane],
    fallback_containers: Mapping[str, str] | None = None,
) -> tuple[ContainerUsage, ...]:
    """Pure: sum process memory per (pod, container, GPU) for pods of this node; other processes are ignored.

    ``processes`` is keyed by GPU UUID. ``fallback_containers`` (pod UID -> container, from PodResources)
    names the container when the runtime id is not in the pod's status yet.
    """
    fallback = fallback_containers or {}
    by_uid = {pl.uid: pl for pl in lanes}
    totals: dict[tuple[str, str, str], int] = {}
    for gpu_uuid, on_gpu in processes.items():
        for proc in on_gpu:
            owner = owners.get(proc.pid)
            if owner is None or owner.pod_uid not in by_uid:
                continue
            pl = by_uid[owner.pod_uid]
            container = pl.container_ids.get(owner.container_id) or fallback.get(owner.pod_uid, "")
            key = (owner.pod_uid, container, gpu_uuid)
            totals[key] = totals.get(key, 0) + proc.used_bytes
    return tuple(ContainerUsage(uid, container, gpu, used) for (uid, container, gpu), used in sorted(totals.items()))
