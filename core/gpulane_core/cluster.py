"""Cluster state for placement: nodes, the lane state of every GPU, and the placements made.

``ClusterState`` is immutable; ``reserve`` and ``unreserve`` return new states. The operator
rebuilds it from the API (GPUNodes + the pods it owns), the simulator evolves it event by event,
and both ask the same question: which (node, GPUs, lane) options exist for this job?
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gpulane_core.lanes import (
    AdmissionKind,
    AdmissionPlan,
    GpuLanes,
    admit,
    check_invariant,
    plan_admission,
    plan_exclusive,
    release,
)
from gpulane_core.model import Gpu, Job, JobId, LaneId, Node, NodeName


@dataclass(frozen=True, slots=True)
class GpuChoice:
    """One GPU of a placement and how the job is admitted to it."""

    index: int
    uuid: str
    plan: AdmissionPlan

    @property
    def lane(self) -> LaneId:
        return self.plan.lane


@dataclass(frozen=True, slots=True)
class Placement:
    job: JobId
    node: NodeName
    gpus: tuple[GpuChoice, ...]

    @property
    def first(self) -> GpuChoice:
        return self.gpus[0]

    @property
    def exclusive(self) -> bool:
        return self.first.plan.kind is AdmissionKind.EXCLUSIVE


@dataclass(frozen=True, slots=True)
class NodeView:
    node: Node
    lanes: Mapping[int, GpuLanes]  # by GPU index
    # Values derived from this view alone, by kind (facts.measure's, occupancy's node totals), kept
    # on first use: a view never changes (a change makes a new view, with an empty memo), and
    # scheduling passes and score plugins ask for them again and again.
    derived: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def healthy_gpus(self) -> tuple[Gpu, ...]:
        """The node's healthy GPUs in order; kept (every decision lists candidates on every node)."""
        kept = self.derived.get("healthy")
        if isinstance(kept, tuple):
            return kept
        healthy = self.derived["healthy"] = tuple(g for g in self.node.gpus if g.healthy)
        return healthy

    @staticmethod
    def empty(node: Node, time_shared: bool = False) -> NodeView:
        """No jobs yet; ``time_shared``: every GPU runs one iteration at a time (one lane, lanes.py)."""
        return NodeView(node, {g.index: GpuLanes(g.memory_mib, time_shared=time_shared) for g in node.gpus})

    def with_job(self, job: Job, placement: Placement) -> NodeView:
        """This node with ``job`` admitted to the placement's GPUs; ValueError if a plan is stale."""
        lanes = dict(self.lanes)
        for choice in placement.gpus:
            lanes[choice.index] = admit(
                lanes[choice.index], job.name, job.persistent_mib, job.ephemeral_mib, choice.plan
            )
        return NodeView(self.node, lanes)  # a new view: its derived memo starts empty


@dataclass(frozen=True, slots=True)
class ClusterState:
    nodes: Mapping[NodeName, NodeView] = field(default_factory=dict)
    placements: Mapping[JobId, Placement] = field(default_factory=dict)
    jobs: Mapping[JobId, Job] = field(default_factory=dict)

    @staticmethod
    def of(nodes: list[Node] | tuple[Node, ...], time_shared: bool = False) -> ClusterState:
        return ClusterState({n.name: NodeView.empty(n, time_shared) for n in nodes})

    def gpu_lanes(self, node: NodeName, index: int) -> GpuLanes:
        return self.nodes[node].lanes[index]

    def candidates(self, job: Job, node: NodeName, *, distinct: bool = False) -> Iterator[Placement]:
        """Every feasible way to put ``job`` on ``node``; nothing when it does not fit.

        A 1-GPU job yields one option per GPU that admits it (a Salus plan per GPU); a multi-GPU
        job yields one option: the lowest-index healthy, empty, acceptable GPUs. ``distinct``: of
        the empty GPUs of one model and size only the first that admits the job (the others would
        be scored alike by a symmetric profile, and lose the tie on their index).
        """
        view = self.nodes[node]
        if job.restricted:
            usable: Sequence[Gpu] = [g for g in view.node.gpus if g.healthy and job.accepts(g)]
        else:
            usable = view.healthy_gpus()
        if job.gpus == 1:
            offered: set[tuple[str, int]] = set()
            persistent, ephemeral = job.persistent_mib, job.ephemeral_mib
            all_lanes = view.lanes
            for gpu in usable:
                lanes = all_lanes[gpu.index]
                if lanes.free_mib < persistent:
                    continue  # not even the persistent part fits (plan_admission's own first refusal)
                idle = distinct and not lanes.tenants
                if idle and (gpu.model, gpu.memory_mib) in offered:
                    continue
                plan = plan_admission(lanes, persistent, ephemeral)
                if plan is not None:
                    if idle:
                        offered.add((gpu.model, gpu.memory_mib))
                    yield Placement(job.name, node, (GpuChoice(gpu.index, gpu.uuid, plan),))
            return
        chosen: list[GpuChoice] = []
        for gpu in usable:
            plan = plan_exclusive(view.lanes[gpu.index], job.persistent_mib, job.ephemeral_mib)
            if plan is not None:
                chosen.append(GpuChoice(gpu.index, gpu.uuid, plan))
            if len(chosen) == job.gpus:
                yield Placement(job.name, node, tuple(chosen))
                return

    def reserve(self, job: Job, placement: Placement) -> ClusterState:
        """Apply a placement; raises ValueError if it is stale (the state changed since it was made)."""
        if job.name in self.placements:
            raise ValueError(f"job {job.name} is already placed on {self.placements[job.name].node}")
        nodes = {**self.nodes, placement.node: self.nodes[placement.node].with_job(job, placement)}
        return ClusterState(nodes, {**self.placements, job.name: placement}, {**self.jobs, job.name: job})

    def unreserve(self, job: JobId) -> ClusterState:
        """Release a job's lanes everywhere. Idempotent: an unknown job leaves the state unchanged."""
        placement = self.placements.get(job)
        if placement is None:
            return self
        view = self.nodes[placement.node]
        lanes = dict(view.lanes)
        for choice in placement.gpus:
            lanes[choice.index] = release(lanes[choice.index], job)
        nodes = {**self.nodes, placement.node: NodeView(view.node, lanes)}
        # A copy and one delete, not a filtered rebuild: the same dicts (order kept) at C speed, and
        # the simulator releases a job at every departure.
        placements = dict(self.placements)
        del placements[job]
        jobs = dict(self.jobs)
        jobs.pop(job, None)
        return ClusterState(nodes, placements, jobs)

    def check_invariants(self) -> list[str]:
        problems: list[str] = []
        for name, view in self.nodes.items():
            for index, gpu_lanes in view.lanes.items():
                problems += [f"{name}/gpu{index}: {p}" for p in check_invariant(gpu_lanes)]
        for job, placement in self.placements.items():
            for choice in placement.gpus:
                if self.nodes[placement.node].lanes[choice.index].tenant(job) is None:
                    problems.append(f"job {job} is placed on {placement.node}/gpu{choice.index} but not resident")
        resident = [t.job for v in self.nodes.values() for g in v.lanes.values() for t in g.tenants]
        for job in set(resident) - set(self.placements):
            problems.append(f"job {job} holds lane memory but has no placement")
        return problems

