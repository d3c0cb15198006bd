"""Pure reading of the kubelet's PodResources answer: which container holds which gpulane memory units.

Two uses: the ``container`` label when a process's runtime id is not (yet) in the pod's status, and an
accounting check: a pod whose units the kubelet took from a GPU other than the one the operator assigned
(the kubelet may ignore GetPreferredAllocation) leaves the kubelet's per-GPU counts wrong, which the agent
reports as an Event instead of letting it pass silently (anchors.md §5, pain point 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gpulane_agent.deviceplugin.units import DeviceIdError, split_device_id
from gpulane_agent.lanes import PodLane


@dataclass(frozen=True, slots=True)
class Holding:
    namespace: str
    pod: str
    container: str
    device_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"

    def gpus(self) -> frozenset[str]:
        uuids = set()
        for dev in self.device_ids:
            try:
                uuids.add(split_device_id(dev)[0])
            except DeviceIdError:
                continue
        return frozenset(uuids)


@dataclass(frozen=True, slots=True)
class Mismatch:
    namespace: str
    pod: str
    uid: str
    assigned_gpu: str
    held_gpus: tuple[str, ...]

    @property
    def message(self) -> str:
        return (
            f"the kubelet charged pod {self.namespace}/{self.pod}'s gpulane.dev/gpu-memory units to GPU(s) "
            f"{', '.join(self.held_gpus)} but the operator assigned {self.assigned_gpu}; the pod runs on "
            f"{self.assigned_gpu} and the kubelet's per-GPU unit counts are off until it ends"
        )


def holdings_from_list(pod_resources: Iterable[Any], resource: str) -> tuple[Holding, ...]:
    """``ListPodResourcesResponse.pod_resources`` to the containers holding ``resource`` devices."""
    out = []
    for pod in pod_resources:
        for container in pod.containers:
            ids = tuple(d for devices in container.devices if devices.resource_name == resource
                        for d in devices.device_ids)
            if ids:
                out.append(Holding(pod.namespace, pod.name, container.name, ids))
    return tuple(sorted(out, key=lambda h: (h.key, h.container)))


def holder_containers(lanes: Sequence[PodLane], holdings: Sequence[Holding]) -> dict[str, str]:
    """Pod UID -> the container that holds its units (for attribution when the runtime id is unknown)."""
    uid_by_key = {f"{pl.namespace}/{pl.pod}": pl.uid for pl in lanes}
    return {uid_by_key[h.key]: h.container for h in holdings if h.key in uid_by_key}


def accounting_mismatches(lanes: Sequence[PodLane], holdings: Sequence[Holding]) -> tuple[Mismatch, ...]:
    """Pods whose held units are on GPUs that include none of the GPUs the operator assigned."""
    held: dict[str, set[str]] = {}
    for h in holdings:
        held.setdefault(h.key, set()).update(h.gpus())
    out = []
    for pl in lanes:
        gpus = held.get(f"{pl.namespace}/{pl.pod}")
        if gpus and gpus.isdisjoint(pl.gpu_uuids):
            out.append(Mismatch(pl.namespace, pl.pod, pl.uid, ",".join(pl.gpu_uuids), tuple(sorted(gpus))))
    return tuple(out)
