"""The domain model: GPUs, nodes and jobs as frozen values.

Memory is an integer number of MiB everywhere in the core. A job's memory is split the Salus way:
*persistent* memory (model and optimizer state) stays resident for the job's life, *ephemeral*
memory (activations, workspace) is needed only while one of its iterations runs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NewType

JobId = NewType("JobId", str)
NodeName = NewType("NodeName", str)
LaneId = NewType("LaneId", str)


class JobClass(enum.Enum):
    """AntMan/DART-style classes: guaranteed jobs may preempt best-effort ones."""

    GUARANTEED = "guaranteed"
    BEST_EFFORT = "best-effort"


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    uuid: str
    model: str
    memory_mib: int
    healthy: bool = True


@dataclass(frozen=True, slots=True)
class Node:
    name: NodeName
    gpus: tuple[Gpu, ...]
    cpu_milli: int = 0
    memory_mib: int = 0
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def gpu(self, index: int) -> Gpu:
        for gpu in self.gpus:
            if gpu.index == index:
                return gpu
        raise KeyError(f"node {self.name} has no GPU {index}")


@dataclass(frozen=True, slots=True)
class Job:
    """One GPU job as the scheduler sees it.

    ``gpus > 1`` means whole GPUs on one node. ``working_set_mib`` is what must be brought back
    onto the GPU before the job's turn when it was evicted (the penalty in seed 000's weight).
    ``gpu_types`` empty means any GPU model is acceptable. ``allowed_gpus`` (GPU UUIDs) narrows the
    choice further when set: the operator computes it from a DRA job's device selectors, so the core
    only sees which GPUs are eligible, never the selector language. None means every GPU.
    """

    name: JobId
    persistent_mib: int
    ephemeral_mib: int
    gpus: int = 1
    arrival_s: float = 0.0
    iteration_s: float = 1.0
    iterations: int = 1
    working_set_mib: int = 0
    job_class: JobClass = JobClass.GUARANTEED
    priority: int = 0
    gpu_types: frozenset[str] = frozenset()
    allowed_gpus: frozenset[str] | None = None

    @property
    def restricted(self) -> bool:
        """Whether some GPUs are refused (by model or by eligibility): the fast paths cannot be taken."""
        return bool(self.gpu_types) or self.allowed_gpus is not None

    @property
    def footprint_mib(self) -> int:
        """Memory the job needs when it runs alone: persistent plus one iteration's peak."""
        return self.persistent_mib + self.ephemeral_mib

    @property
    def estimated_duration_s(self) -> float:
        return self.iteration_s * self.iterations

    def accepts(self, gpu: Gpu) -> bool:
        if self.allowed_gpus is not None and gpu.uuid not in self.allowed_gpus:
            return False
        return not self.gpu_types or gpu.model in self.gpu_types


def validate_job(job: Job) -> list[str]:
    """Field-named reasons why a job is malformed; empty when it is fine."""
    problems: list[str] = []
    if not job.name:
        problems.append("name: must not be empty")
    if job.gpus < 1:
        problems.append(f"gpus: must be at least 1, got {job.gpus}")
    if job.persistent_mib < 0:
        problems.append(f"persistent_mib: must not be negative, got {job.persistent_mib}")
    if job.ephemeral_mib < 0:
        problems.append(f"ephemeral_mib: must not be negative, got {job.ephemeral_mib}")
    if job.persistent_mib + job.ephemeral_mib <= 0:
        problems.append("persistent_mib + ephemeral_mib: a job must need some GPU memory")
    if job.iteration_s <= 0:
        problems.append(f"iteration_s: must be positive, got {job.iteration_s}")
    if job.iterations < 1:
        problems.append(f"iterations: must be at least 1, got {job.iterations}")
    if job.working_set_mib < 0:
        problems.append(f"working_set_mib: must not be negative, got {job.working_set_mib}")
    if job.arrival_s < 0:
        problems.append(f"arrival_s: must not be negative, got {job.arrival_s}")
    return problems
