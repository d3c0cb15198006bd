"""The GPUNode object: a pure builder of its status and a publisher that heartbeats it.

Status shape follows crds/gpunodes.gpulane.dev.yaml: ``gpus[]`` (index, uuid, model, memoryMiB, health,
usedMiB, lanes[] with id/sizeMiB/usedMiB/jobs; in DRA mode also draClaims[] and freeMiB),
``heartbeatTime``, ``agentVersion``, ``memoryUnitMiB``.
Publishing is create-or-update plus a status patch, so it reconciles after any agent restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gpulane_core.quantity import MIB

from gpulane_agent.dra.cdi import PreparedClaim
from gpulane_agent.gpu.backend import GpuBackend, GpuError, GpuInfo
from gpulane_agent.lanes import LaneView
from gpulane_agent.stats import AgentStats

NODE_LABEL = "gpulane.dev/node"


def gpunode_status(
    gpus: tuple[GpuInfo, ...],
    used_bytes: Mapping[int, int],
    health: Mapping[int, bool],
    lanes: tuple[LaneView, ...],
    now: dt.datetime,
    agent_version: str,
    memory_unit_mib: int,
    dra_claims: tuple[PreparedClaim, ...] | None = None,
) -> dict[str, Any]:
    """Pure: the GPUNode status for this moment.

    ``dra_claims`` (DRA mode only; None otherwise) are the claims prepared on this node: each GPU lists
    its own and ``freeMiB`` is its memory less theirs. In DRA mode the device plugin is off, so these
    claims are every allocation the GPU has; in device-plugin mode no free figure is published, because
    the lanes' persistent memory is known only to the operator (its pod annotations are authoritative).
    """
    entries = []
    for gpu in gpus:
        entry: dict[str, Any] = {
            "index": gpu.index,
            "uuid": gpu.uuid,
            "model": gpu.model,
            "memoryMiB": gpu.memory_total_bytes // MIB,
            "health": "Healthy" if health.get(gpu.index, True) else "Unhealthy",
            "lanes": [
                {"id": lane.lane, "sizeMiB": lane.size_mib, "usedMiB": lane.used_bytes // MIB, "jobs": list(lane.jobs)}
                for lane in lanes
                if lane.gpu_uuid == gpu.uuid
            ],
        }
        if gpu.index in used_bytes:  # unknown (reading failed) is omitted rather than published as 0
            entry["usedMiB"] = used_bytes[gpu.index] // MIB
        if dra_claims is not None:
            mine = [c for c in dra_claims if c.gpu_index == gpu.index]
            entry["draClaims"] = [
                {"namespace": c.namespace, "name": c.name, "uid": c.uid, "memoryMiB": c.memory_mib} for c in mine
            ]
            # Floored: claims allocated before a GPU was replaced by a smaller one must not publish < 0.
            entry["freeMiB"] = max(0, entry["memoryMiB"] - sum(c.memory_mib for c in mine))
        entries.append(entry)
    return {
        "gpus": entries,
        "heartbeatTime": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "agentVersion": agent_version,
        "memoryUnitMiB": memory_unit_mib,
    }


def read_used(backend: GpuBackend, stats: AgentStats) -> dict[int, int]:
    """Memory used per readable GPU; failures are counted, not raised."""
    used: dict[int, int] = {}
    for gpu in backend.gpus():
        try:
            used[gpu.index] = backend.memory(gpu.index).used_bytes
        except GpuError as exc:
            stats.backend_error(exc.operation)
    return used
