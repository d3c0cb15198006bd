"""The GPUNode object: a pure builder of its status and a publisher that heartbeats it.

Status shape follows crds/gpunodes.gpulane.dev.yaml: ``gpus[]`` (index, uuid, model, memoryMiB, health,
usedMiB, lanes[] with id/sizeMiB/usedMiB/jobs), ``heartbeatTime``, ``agentVersion``, ``memoryUnitMiB``.
Publishing is create-or-update plus a status patch, so it reconciles after any agent restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gpulane_core.quantity import MIB

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
) -> dict[str, Any]:
    """Pure: the GPUNode status for this moment."""
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
