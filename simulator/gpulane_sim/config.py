"""Simulation settings as one frozen dataclass, with field-named validation."""

from __future__ import annotations

from dataclasses import dataclass

from gpulane_core.cluster import ClusterState
from gpulane_core.model import Gpu, Node, NodeName


@dataclass(frozen=True, slots=True)
class SimConfig:
    gpus: int = 2
    gpu_memory_mib: int = 16 * 1024
    gpus_per_node: int = 8
    bandwidth_bytes_s: float = 16e9  # PCIe host-to-device, one copy engine per GPU
    prefetch: bool = True
    seed: int = 0
    colocation_slowdown: float = 0.0  # each extra lane computing on a GPU stretches an iteration by this
    window_s: float = 30.0  # the weight policy's sliding window
    # "auto": spread for policies that time-share a GPU as one lane (packing them onto a busy GPU
    # while another idles only adds turns), gpulane's lane-aware profile where lanes run concurrently.
    placement: str = "auto"
    record_segments: bool = False  # keep every compute/transfer interval (for the Gantt plot)
    ga_population: int = 16
    ga_survivors: int = 6
    ga_generations: int = 15
    ga_time_budget_s: float = 60.0  # the GA stops after this much wall time (0: generations only)

    def validate(self) -> list[str]:
        problems: list[str] = []
        if self.gpus < 1:
            problems.append(f"gpus: must be at least 1, got {self.gpus}")
        if self.gpu_memory_mib < 1:
            problems.append(f"gpu_memory: must be positive, got {self.gpu_memory_mib} MiB")
        if self.gpus_per_node < 1:
            problems.append(f"gpus_per_node: must be at least 1, got {self.gpus_per_node}")
        if self.bandwidth_bytes_s <= 0:
            problems.append(f"bandwidth: must be positive, got {self.bandwidth_bytes_s}")
        if self.colocation_slowdown < 0:
            problems.append(f"colocation_slowdown: must not be negative, got {self.colocation_slowdown}")
        if self.window_s <= 0:
            problems.append(f"window_s: must be positive, got {self.window_s}")
        if self.ga_population < 2 or not 1 <= self.ga_survivors <= self.ga_population:
            problems.append(
                "ga_population/ga_survivors: need population >= 2 and 1 <= survivors <= population"
            )
        if self.ga_generations < 0:
            problems.append(f"ga_generations: must not be negative, got {self.ga_generations}")
        if self.ga_time_budget_s < 0:
            problems.append(f"ga_time_budget_s: must not be negative, got {self.ga_time_budget_s}")
        return problems

    def nodes(self) -> list[Node]:
        """``gpus`` identical GPUs, ``gpus_per_node`` to a node (the last node may have fewer)."""
        out: list[Node] = []
        left, n = self.gpus, 0
        while left > 0:
            count = min(left, self.gpus_per_node)
            name = NodeName(f"node-{n}")
            gpus = tuple(Gpu(i, f"{name}-gpu{i}", "sim-gpu", self.gpu_memory_mib) for i in range(count))
            out.append(Node(name, gpus))
            left -= count
            n += 1
        return out

    def cluster(self, time_shared: bool = False) -> ClusterState:
        """Empty GPUs; ``time_shared`` for policies that run one iteration at a time per GPU."""
        return ClusterState.of(self.nodes(), time_shared)
