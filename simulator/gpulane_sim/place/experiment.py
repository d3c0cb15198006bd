"""The FGD paper's placement experiment: arrivals only, one pod at a time, allocation recorded.

Protocol (kubernetes-scheduler-simulator ``pkg/simulator/{core,simulator}.go``): pods sorted by name
are shuffled with the seed; copies of randomly drawn trace pods are appended until the GPU request
would pass ``inflation`` x cluster GPU capacity (or random pods dropped while above it); nodes,
sorted by name, get a seeded random rank that decides ties (the simulator prefixes each name with
it and picks the smallest). Typical pods come from the original trace (95%, CPU pods included).
Pods never leave; a pod that does not fit is recorded and not retried. After every arrival we record
(arrived GPU request, allocated GPU) in milli-GPU.

Python's RNG replaces Go's ``math/rand``, so per-seed orders differ from the published runs; means
over seeds are what compare.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gpulane_core.fragmentation.family import PolicyName
from gpulane_core.fragmentation.frag import typical_pods
from gpulane_core.fragmentation.policy import EMPTY_CYCLE, NodeScore, NodeScorer, fits
from gpulane_core.fragmentation.types import MILLI, NodeState, PodShape, TypicalPod
from gpulane_core.registry import Registry, default_registry

from gpulane_sim.place.trace import TracePod


@dataclass(frozen=True, slots=True)
class Workload:
    """The arrival order of one seeded run, and the nodes in tie-break order."""

    pods: tuple[TracePod, ...]
    nodes: tuple[NodeState, ...]
    typical: tuple[TypicalPod, ...]
    capacity_milli: int


@dataclass(frozen=True, slots=True)
class RunResult:
    policy: str
    seed: int
    capacity_milli: int
    arrived_milli: tuple[int, ...]  # after each arrival
    allocated_milli: tuple[int, ...]
    failed: int
    seconds: float

    @property
    def final_allocation_ratio(self) -> float:
        return self.allocated_milli[-1] / self.capacity_milli if self.allocated_milli else 0.0


def prepare(
    nodes: Sequence[NodeState], pods: Sequence[TracePod], seed: int, inflation: float = 1.3
) -> Workload:
    """Order and tune the workload for one seed, and rank the nodes for tie-breaking."""
    if inflation < 0:
        raise ValueError(f"inflation: must not be negative, got {inflation}")
    rng = random.Random(seed)
    capacity = sum(n.gpu_count for n in nodes) * MILLI
    by_name = sorted(pods, key=lambda p: p.name)
    order = list(by_name)
    rng.shuffle(order)
    total = sum(p.shape.total_gpu_milli for p in order)
    target = inflation * capacity
    if inflation > 0 and total < target and by_name:
        i = 0
        while True:
            pick = by_name[rng.randrange(len(by_name))]
            # the simulator checks the per-GPU share here, not the total (kept for fidelity)
            if total + pick.shape.gpu_milli > target:
                break
            order.append(TracePod(f"{pick.name}-tuned-{i}", pick.shape))
            total += pick.shape.total_gpu_milli
            i += 1
    elif inflation > 0:
        while total > target and order:
            gone = order.pop(rng.randrange(len(order)))
            total -= gone.shape.total_gpu_milli
    ranked = sorted(nodes, key=lambda n: n.name)
    ranks = list(range(len(ranked)))
    rng.shuffle(ranks)
    tie_order = tuple(n for _, n in sorted(zip(ranks, ranked, strict=True), key=lambda pair: pair[0]))
    typical = typical_pods((p.shape for p in by_name), threshold=0.95, step=1, include_cpu_pods=True)
    return Workload(tuple(order), tie_order, typical, capacity)


# immutable sentinels, compared by identity: "not cached yet", and "fits" for uncacheable plugins
# (None caches "does not fit")
_MISS = NodeScore(-1, ())
_FITS = NodeScore(0, ())


class Engine:
    """Runs one policy over a workload; memoises each node's verdict per pod shape.

    A node's filter verdict and (for cacheable plugins) its score depend only on its state and the
    pod shape, so they are kept in one row per shape (indexed by node) and reset for a node when it
    changes. Shapes are interned to small integers: hashing a dataclass per node per pod dominated
    the run time. The decision is the same as :func:`gpulane_core.fragmentation.policy.schedule`
    over the same node order (tested).
    """

    def __init__(self, nodes: Sequence[NodeState], plugin: NodeScorer) -> None:
        self.nodes = list(nodes)
        self.plugin = plugin
        self._shape_ids: dict[PodShape, int] = {}
        self._rows: list[list[NodeScore | None]] = []

    def _row(self, pod: PodShape) -> list[NodeScore | None]:
        shape_id = self._shape_ids.get(pod)
        if shape_id is None:
            shape_id = self._shape_ids[pod] = len(self._rows)
            self._rows.append([_MISS] * len(self.nodes))
        return self._rows[shape_id]

    def place(self, pod: PodShape) -> tuple[int, tuple[int, ...]] | None:
        """Schedule one pod; returns (node index in order, GPUs) and applies it, or None."""
        plugin = self.plugin
        nodes = self.nodes
        feasible: list[int] = []
        scored: list[NodeScore] = []
        if plugin.cacheable:
            row = self._row(pod)
            for i, hit in enumerate(row):
                if hit is _MISS:
                    node = nodes[i]
                    hit = row[i] = plugin.score(node, pod, EMPTY_CYCLE) if fits(node, pod) else None
                if hit is not None:
                    feasible.append(i)
                    scored.append(hit)
        else:  # only the filter verdict is memoised; the plugin scores afresh (Random draws)
            row = self._row(pod)
            for i, hit in enumerate(row):
                if hit is _MISS:
                    hit = row[i] = _FITS if fits(nodes[i], pod) else None
                if hit is not None:
                    feasible.append(i)
            if feasible:
                cycle = plugin.pre_score(pod, [nodes[i] for i in feasible])
                scored = [plugin.score(nodes[i], pod, cycle) for i in feasible]
        if not feasible:
            return None
        totals = plugin.normalize([s.score for s in scored])
        best = 0  # highest total, then highest rank; the first in node order on a full tie
        best_total, best_rank = totals[0], scored[0].rank
        for k in range(1, len(totals)):
            total = totals[k]
            if total > best_total or (total == best_total and scored[k].rank > best_rank):
                best, best_total, best_rank = k, total, scored[k].rank
        index, gpus = feasible[best], scored[best].gpus
        nodes[index] = nodes[index].place(pod, gpus)
        for other in self._rows:
            other[index] = _MISS
        return index, gpus


def run(workload: Workload, policy: PolicyName | str, seed: int, registry: Registry | None = None) -> RunResult:
    """One seeded run of a registered placement policy (an FGD-family scorer or a lane profile)."""
    name = policy.value if isinstance(policy, PolicyName) else policy
    plugin = (registry or default_registry()).scorer(name, workload.typical, seed)
    engine = Engine(workload.nodes, plugin)
    arrived, allocated, failed = 0, 0, 0
    arrived_log: list[int] = []
    allocated_log: list[int] = []
    started = time.perf_counter()
    for pod in workload.pods:
        arrived += pod.shape.total_gpu_milli
        if engine.place(pod.shape) is None:
            failed += 1
        else:
            allocated += pod.shape.total_gpu_milli
        arrived_log.append(arrived)
        allocated_log.append(allocated)
    seconds = time.perf_counter() - started
    return RunResult(
        name, seed, workload.capacity_milli, tuple(arrived_log), tuple(allocated_log), failed, seconds
    )


def subsample(nodes: Sequence[NodeState], pods: Sequence[TracePod], n_nodes: int, seed: int = 0) -> tuple[
    list[NodeState], list[TracePod]
]:
    """A smaller cluster with the pod list scaled to it (for tests and quick benchmarks)."""
    rng = random.Random(seed)
    keep_nodes = sorted(rng.sample(list(nodes), min(n_nodes, len(nodes))), key=lambda n: n.name)
    share = len(keep_nodes) / max(1, len(nodes))
    keep_pods = sorted(rng.sample(list(pods), max(1, round(len(pods) * share))), key=lambda p: p.name)
    return keep_nodes, keep_pods
