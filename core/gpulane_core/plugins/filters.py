"""Filter plugins: re-check health, GPU type and eligibility (``Job.allowed_gpus``) on every option.

``ClusterState.candidates`` already skips unhealthy and unwanted GPUs; these filters keep that rule
in the profile too, so a custom candidate source (or a state whose health changed between listing
and choosing) cannot slip a bad GPU through, and a rejection names the plugin that said no.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.framework import CycleContext
from gpulane_core.model import Job
from gpulane_core.status import Status

_OK = Status.success()  # immutable; shared so that passing a filter allocates nothing


@dataclass(frozen=True, slots=True)
class HealthyGpus:
    name: str = "HealthyGpus"

    def filter(self, ctx: CycleContext, job: Job, option: Placement) -> Status:
        node = ctx.state.nodes[option.node].node
        for choice in option.gpus:
            if not node.gpu(choice.index).healthy:
                return Status.unschedulable(f"{option.node}/gpu{choice.index} is unhealthy", self.name)
        return _OK


@dataclass(frozen=True, slots=True)
class GpuType:
    name: str = "GpuType"

    def filter(self, ctx: CycleContext, job: Job, option: Placement) -> Status:
        if not job.restricted:
            return _OK
        node = ctx.state.nodes[option.node].node
        for choice in option.gpus:
            gpu = node.gpu(choice.index)
            if job.allowed_gpus is not None and gpu.uuid not in job.allowed_gpus:
                return Status.unschedulable(
                    f"{option.node}/gpu{choice.index} matches none of the job's device selectors", self.name
                )
            if not job.accepts(gpu):
                wanted = ", ".join(sorted(job.gpu_types))
                return Status.unschedulable(
                    f"{option.node}/gpu{choice.index} is a {gpu.model}, job wants {wanted}", self.name
                )
        return _OK
