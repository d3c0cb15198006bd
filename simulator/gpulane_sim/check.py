"""Refuse a workload that can never run on the simulated cluster, naming the job's line and field."""

from __future__ import annotations

from gpulane_core.quantity import format_mib

from gpulane_sim.config import SimConfig
from gpulane_sim.workload import Workload, WorkloadError


def check_fits(workload: Workload, config: SimConfig) -> None:
    per_node = min(config.gpus, config.gpus_per_node)
    for job in workload.jobs:
        where = f"{workload.source}:{workload.lines[job.name]}"
        if job.footprint_mib > config.gpu_memory_mib:
            raise WorkloadError(
                f"{where}: persistent_mib + ephemeral_mib: job {job.name} needs {format_mib(job.footprint_mib)},"
                f" larger than every GPU ({format_mib(config.gpu_memory_mib)})"
            )
        if job.gpus > per_node:
            raise WorkloadError(
                f"{where}: gpus: job {job.name} wants {job.gpus} GPUs on one node, nodes have {per_node}"
            )
