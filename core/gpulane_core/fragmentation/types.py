"""Milli-GPU value types for cluster placement on GPU-sharing traces (Alibaba 2023, FGD paper).

The Alibaba trace and the FGD simulator describe a GPU by how much of it is still free in
milli-GPU (0..1000) and a pod by its CPU, its GPU count and its per-GPU share. gpulane's own lane
model works in MiB; this module is the milli view used to replay the published experiments and to
compare gpulane's placement with FGD on the same terms. Everything is frozen: placing a pod
returns a new node state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

MILLI = 1000  # one whole GPU


class PodClass(enum.Enum):
    """GpuClustering's affinity classes: CPU-only, a share of one GPU, or whole GPUs."""

    NO_GPU = "no-gpu"
    SHARE_GPU = "share-gpu"
    WHOLE_GPU = "whole-gpu"


@dataclass(frozen=True, slots=True)
class PodShape:
    """A pod's demand as the scheduler sees it (names and times are not part of it).

    ``gpu_milli`` is per GPU; a sharing pod has ``num_gpu == 1`` and ``gpu_milli < 1000``.
    ``gpu_types`` lists acceptable GPU models (sorted); empty means any model.
    """

    cpu_milli: int
    num_gpu: int = 0
    gpu_milli: int = 0
    gpu_types: tuple[str, ...] = ()
    memory_mib: int = 0

    @property
    def total_gpu_milli(self) -> int:
        return self.num_gpu * self.gpu_milli

    @property
    def is_sharing(self) -> bool:
        return self.num_gpu == 1 and 0 < self.gpu_milli < MILLI

    @property
    def pod_class(self) -> PodClass:
        if self.num_gpu == 0 or self.gpu_milli == 0:
            return PodClass.NO_GPU
        return PodClass.SHARE_GPU if self.is_sharing else PodClass.WHOLE_GPU

    @property
    def affinity(self) -> str:
        """The simulator's affinity tag: ``share-gpu`` or ``<k>-gpu`` (empty for CPU-only pods)."""
        if self.pod_class is PodClass.NO_GPU:
            return ""
        return "share-gpu" if self.is_sharing else f"{self.num_gpu}-gpu"

    def accepts(self, model: str) -> bool:
        return not self.gpu_types or model in self.gpu_types

    def without_memory(self) -> PodShape:
        """The key typical pods are grouped by: host memory is not part of it."""
        return replace(self, memory_mib=0) if self.memory_mib else self


def validate_pod_shape(pod: PodShape) -> list[str]:
    """Field-named reasons why a pod demand is malformed; empty when it is fine."""
    problems: list[str] = []
    if pod.cpu_milli < 0:
        problems.append(f"cpu_milli: must not be negative, got {pod.cpu_milli}")
    if pod.memory_mib < 0:
        problems.append(f"memory_mib: must not be negative, got {pod.memory_mib}")
    if pod.num_gpu < 0:
        problems.append(f"num_gpu: must not be negative, got {pod.num_gpu}")
    if not 0 <= pod.gpu_milli <= MILLI:
        problems.append(f"gpu_milli: must be within 0..{MILLI}, got {pod.gpu_milli}")
    if pod.num_gpu > 1 and pod.gpu_milli != MILLI:
        problems.append(f"gpu_milli: a pod with {pod.num_gpu} GPUs must take whole GPUs (1000), got {pod.gpu_milli}")
    if pod.num_gpu == 0 and pod.gpu_milli != 0:
        problems.append(f"gpu_milli: a pod without GPUs must have gpu_milli 0, got {pod.gpu_milli}")
    return problems


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node's free resources. ``gpu_milli_left`` is indexed by GPU device index.

    ``affinities`` counts the GPU pods hosted per affinity tag (sorted pairs), which is all
    GpuClustering needs to know about the pods already on the node.
    """

    name: str
    model: str
    cpu_milli_left: int
    memory_mib_left: int
    gpu_milli_left: tuple[int, ...]
    affinities: tuple[tuple[str, int], ...] = ()

    @staticmethod
    def empty(name: str, model: str, cpu_milli: int, memory_mib: int, gpus: int) -> NodeState:
        return NodeState(name, model, cpu_milli, memory_mib, (MILLI,) * gpus)

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_milli_left)

    @property
    def gpu_milli_left_total(self) -> int:
        return sum(self.gpu_milli_left)

    @property
    def fully_free_gpus(self) -> int:
        return sum(1 for left in self.gpu_milli_left if left == MILLI)

    def place(self, pod: PodShape, gpus: tuple[int, ...]) -> NodeState:
        """The state after ``pod`` lands on GPUs ``gpus``; raises ValueError if it does not fit."""
        if pod.cpu_milli > self.cpu_milli_left or pod.memory_mib > self.memory_mib_left:
            raise ValueError(f"pod {pod} does not fit CPU/memory of node {self.name}")
        left = list(self.gpu_milli_left)
        if len(gpus) != pod.num_gpu or len(set(gpus)) != len(gpus):
            raise ValueError(f"pod needs {pod.num_gpu} distinct GPUs, got {gpus}")
        for index in gpus:
            if not 0 <= index < len(left) or left[index] < pod.gpu_milli:
                raise ValueError(f"GPU {index} of node {self.name} cannot take {pod.gpu_milli} milli")
            left[index] -= pod.gpu_milli
        affinities = self.affinities
        if pod.affinity:
            counts = dict(affinities)
            counts[pod.affinity] = counts.get(pod.affinity, 0) + 1
            affinities = tuple(sorted(counts.items()))
        return replace(
            self,
            cpu_milli_left=self.cpu_milli_left - pod.cpu_milli,
            memory_mib_left=self.memory_mib_left - pod.memory_mib,
            gpu_milli_left=tuple(left),
            affinities=affinities,
        )


@dataclass(frozen=True, slots=True)
class TypicalPod:
    """A pod shape of the target workload with its popularity (all popularities sum to 1)."""

    shape: PodShape
    popularity: float
