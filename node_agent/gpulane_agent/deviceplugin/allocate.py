"""Pure decisions behind Allocate: which pod the kubelet is allocating for, and what its containers get.

The kubelet's Allocate carries only device IDs, not the pod. The operator writes its decision into pod
annotations before binding and keeps ``charge-units`` unique among a node's not-yet-allocated pods, so
the pod is the single one with (node, not ``allocated``, ``charge-units`` == number of IDs). Zero or
several candidates is a refusal with a message naming what is missing; we never guess (HAMi's guessing
of "the pending pod" is a known source of stuck pods, anchors.md §5 #5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gpulane_core import fakegpu
from gpulane_core import podcontract as ann

from gpulane_agent.kube.api import PodView


class AllocateRefused(Exception):
    """Allocate cannot be answered; the message is returned to the kubelet (FAILED_PRECONDITION)."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one container's Allocate is for: the pod and the operator's ``podcontract.Assignment`` of it."""

    pod: PodView
    assignment: ann.Assignment
    memory_limit_mib: int  # gpulane.dev/memory-limit-mib as the operator wrote it, handed to the workload


@dataclass(frozen=True, slots=True)
class Mount:
    container_path: str
    host_path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerGrant:
    envs: Mapping[str, str]
    mounts: tuple[Mount, ...]


def parse_allocation(pod: PodView) -> Allocation:
    """Read the operator's annotations; a missing or malformed one is an AllocateRefused naming it."""
    try:
        assignment = ann.from_annotations(ann.pod_job(pod.namespace, pod.name, pod.labels), pod.annotations)
        limit_mib = ann.written_memory_limit_mib(pod.annotations)
    except ann.AnnotationError as exc:
        raise AllocateRefused(f"pod {pod.key}: {exc}") from None
    return Allocation(pod, assignment, limit_mib)


def awaiting_allocation(pods: Sequence[PodView], node_name: str) -> list[PodView]:
    """Pods on this node the operator assigned and the agent has not allocated yet."""
    return [
        p
        for p in pods
        if p.annotations.get(ann.NODE) == node_name
        and p.annotations.get(ann.ALLOCATED) != "true"
        and not p.finished
        and not p.deleting
    ]


def find_pod(pods: Sequence[PodView], node_name: str, units: int, resource: str) -> PodView:
    """The single pod awaiting ``units`` units on ``node_name``, else AllocateRefused explaining why."""
    waiting = awaiting_allocation(pods, node_name)
    matches = [p for p in waiting if p.annotations.get(ann.CHARGE_UNITS, "").strip() == str(units)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(sorted(p.key for p in matches))
        raise AllocateRefused(
            f"{len(matches)} pods on node {node_name} await {units} units of {resource} ({names}); "
            f"the operator must keep {ann.CHARGE_UNITS} unique, refusing to guess"
        )
    if not waiting:
        raise AllocateRefused(
            f"no pod on node {node_name} awaits allocation of {units} units of {resource}: no pod has "
            f"annotation {ann.NODE}={node_name} without {ann.ALLOCATED}=true (was it scheduled by gpulane?)"
        )
    others = ", ".join(f"{p.key} ({ann.CHARGE_UNITS}={p.annotations.get(ann.CHARGE_UNITS, 'missing')})"
                       for p in sorted(waiting, key=lambda p: p.key))
    raise AllocateRefused(
        f"no pod on node {node_name} has {ann.CHARGE_UNITS}={units} (the kubelet asked for {units} units of "
        f"{resource}); pods awaiting allocation: {others}"
    )


def container_grant(allocation: Allocation, coordinator_socket: str, fake_gpu_dir: str = "") -> ContainerGrant:
    """The environment and mounts of docs/contracts.md for a container of the assigned pod.

    ``fake_gpu_dir`` (only when the agent runs the fake backend) is where the container's processes
    report the GPU memory they use: mounted read-write at the same path and named in the environment.
    """
    return grant_for(allocation.assignment, allocation.memory_limit_mib, coordinator_socket, fake_gpu_dir)


def grant_for(
    assignment: ann.Assignment, limit: int, coordinator_socket: str, fake_gpu_dir: str = ""
) -> ContainerGrant:
    """The grant itself, shared by Allocate and the DRA plugin's CDI specs so the two cannot drift apart."""
    uuids = ",".join(assignment.gpu_uuids)
    # MPS numbers devices as the container sees them (0..n-1), each pinned to the lane limit.
    pinned = ",".join(f"{i}={limit}M" for i in range(len(assignment.gpu_uuids)))
    envs = {
        "CUDA_VISIBLE_DEVICES": uuids,
        "NVIDIA_VISIBLE_DEVICES": uuids,
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": pinned,
        "GPULANE_MEMORY_LIMIT_MIB": str(limit),
        "GPULANE_PERSISTENT_MIB": str(assignment.persistent_mib),
        "GPULANE_EPHEMERAL_MIB": str(assignment.ephemeral_mib),
        "GPULANE_LANE_ID": f"{assignment.gpu_uuids[0]}/{assignment.lane}",
        "GPULANE_JOB": assignment.job,
        "GPULANE_GPU_UUID": assignment.gpu_uuids[0],
        "GPULANE_COORDINATOR_SOCKET": coordinator_socket,
    }
    socket_dir = coordinator_socket.rsplit("/", 1)[0] or "/"
    mounts = [Mount(socket_dir, socket_dir, read_only=False)]
    if fake_gpu_dir:
        envs[fakegpu.ENV_DIR] = fake_gpu_dir
        mounts.append(Mount(fake_gpu_dir, fake_gpu_dir, read_only=False))
    return ContainerGrant(envs=envs, mounts=tuple(mounts))


def check_units(allocation: Allocation, units: int) -> None:
    """The kubelet's count must equal the operator's charge (defence against a stale annotation)."""
    if allocation.assignment.charge_units != units:
        raise AllocateRefused(
            f"pod {allocation.pod.key}: {ann.CHARGE_UNITS}={allocation.assignment.charge_units} "
            f"but the kubelet allocates {units} units"
        )
