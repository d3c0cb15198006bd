"""One placement surface: the FGD family as framework score plugins, and framework profiles in ``place``.

Every placement algorithm is a :class:`~gpulane_core.framework.Profile` registered under one name in
:mod:`gpulane_core.registry`. The FGD family is written in milli-GPU terms
(:class:`~gpulane_core.fragmentation.policy.NodeScorer`); this module translates in both directions.

**Scorer -> score plugin** (:class:`FamilyScore`; the operator's ``--placement fgd``, ``simulate``):

* a GPU's free share is ``floor(1000 x free MiB / capacity)``, 0 when unhealthy or held whole; CPU
  and host memory are not tracked by the lane scheduler, so they never bind (the node's own CPU if
  known, else unlimited; jobs ask for none);
* a 1-GPU job asks for ``ceil(1000 x (persistent + ephemeral) / capacity)`` of one GPU (at most a
  whole one); a multi-GPU job for whole GPUs;
* the *typical pods* (the workload FGD measures fragmentation against) are the jobs now placed plus
  the one being placed, all counted (threshold 1.0), in milli of the cluster's most common GPU size;
* the scorer rates each node once per decision and names its GPUs; the option with exactly those
  GPUs gets the node's normalised score (on 1..100), the node's other options 0, so the profile
  picks the scorer's node and GPUs (ties: lowest node name, as the FGD simulator's sorted node
  order). A scorer's secondary ``rank`` is not carried over (only FGD-simulator replays use it).

**Profile -> scorer** (:class:`ProfileScorer`; ``gpulane place --policy gpulane,binpack,spread``):
each feasible node becomes a lane node whose GPUs hold 1000 units, the used share as one resident
tenant; the pod becomes a job of its share (persistent, no ephemeral part); one scheduling cycle of
:func:`gpulane_core.scheduler.schedule_cycle` chooses. CPU-only pods go to the first feasible node.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gpulane_core.cluster import ClusterState, NodeView, Placement
from gpulane_core.fragmentation.frag import typical_pods
from gpulane_core.fragmentation.policy import (
    EMPTY_CYCLE,
    CycleState,
    NodeScore,
    NodeScorer,
    best_fit_gpus,
    fits,
)
from gpulane_core.fragmentation.types import MILLI, NodeState, PodShape, TypicalPod
from gpulane_core.framework import MAX_SCORE, CycleContext, Profile, WeightedScore
from gpulane_core.lanes import GpuLanes, Lane, Tenant
from gpulane_core.model import Gpu, Job, JobId, LaneId, Node, NodeName
from gpulane_core.plugins.filters import GpuType, HealthyGpus

UNLIMITED = 10**12
NOT_CHOSEN = -math.inf  # raw score of an option whose GPUs the scorer did not pick (raw scores may be negative)
ScorerFactory = Callable[[Sequence[TypicalPod], int], NodeScorer]
_USED = JobId("used")
_USED_LANE = LaneId("used")


def milli_node(view: NodeView) -> NodeState:
    """A lane node as the FGD family sees it (free share per GPU in device order)."""
    gpus = sorted(view.node.gpus, key=lambda g: g.index)
    left = []
    for gpu in gpus:
        lanes = view.lanes[gpu.index]
        usable = gpu.healthy and not lanes.is_exclusive and gpu.memory_mib > 0
        left.append(max(0, lanes.free_mib) * MILLI // gpu.memory_mib if usable else 0)
    cpu = view.node.cpu_milli or UNLIMITED
    return NodeState(view.node.name, gpus[0].model if gpus else "", cpu, UNLIMITED, tuple(left))


def milli_pod(job: Job, capacity_mib: int) -> PodShape:
    """A job as a pod shape, its share in milli of a GPU of ``capacity_mib``."""
    types = tuple(sorted(job.gpu_types))
    if job.gpus > 1:
        return PodShape(0, job.gpus, MILLI, types)
    share = math.ceil(job.footprint_mib * MILLI / capacity_mib) if capacity_mib > 0 else MILLI
    return PodShape(0, 1, max(1, min(MILLI, share)), types)


def _reference_capacity(state: ClusterState) -> int:
    sizes = Counter(g.memory_mib for view in state.nodes.values() for g in view.node.gpus)
    return min(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[0] if sizes else MILLI


@dataclass(frozen=True, slots=True)
class _Decision:
    """One job's milli view: the scorer, its pod, the per-node scores (filled as options are scored)."""

    scorer: NodeScorer
    pod: PodShape
    cycle: CycleState
    nodes: dict[NodeName, NodeState]
    scores: dict[NodeName, NodeScore | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FamilyScore:
    """A member of the FGD family as a framework score plugin over lane placement options."""

    name: str
    factory: ScorerFactory
    seed: int = 0

    def _decision(self, ctx: CycleContext, job: Job) -> _Decision:
        key = ("fgd-family", self.name, job.name)
        found = ctx.memo.get(key)
        if isinstance(found, _Decision):
            return found
        capacity = _reference_capacity(ctx.state)
        shapes = [milli_pod(j, capacity) for j in ctx.state.jobs.values() if j.name != job.name]
        typical = typical_pods([*shapes, milli_pod(job, capacity)], threshold=1.0)
        scorer = self.factory(typical, self.seed)
        pod = milli_pod(job, capacity)
        nodes = {name: milli_node(view) for name, view in sorted(ctx.state.nodes.items())}
        feasible = [n for n in nodes.values() if fits(n, pod)]
        cycle = scorer.pre_score(pod, feasible) if feasible else EMPTY_CYCLE
        decision = _Decision(scorer, pod, cycle, nodes)
        ctx.memo[key] = decision
        return decision

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        d = self._decision(ctx, job)
        if option.node not in d.scores:
            node = d.nodes[option.node]
            d.scores[option.node] = d.scorer.score(node, d.pod, d.cycle) if fits(node, d.pod) else None
        scored = d.scores[option.node]
        if scored is None:
            return NOT_CHOSEN
        order = sorted(g.index for g in ctx.state.nodes[option.node].node.gpus)
        positions = tuple(sorted(order.index(c.index) for c in option.gpus))
        return float(scored.score) if positions == tuple(sorted(scored.gpus)) else NOT_CHOSEN

    def normalize(self, scores: Sequence[float]) -> list[float]:
        """The scorer's own normalisation over the chosen options, squeezed onto 1..100 (order kept);
        every other option gets 0, so a chosen option always wins over the node's other GPUs."""
        valid = [int(s) for s in scores if s != NOT_CHOSEN]
        mapped = iter(_onto_score_range(self.factory((), self.seed).normalize(valid)))
        step = (MAX_SCORE - 1) / MAX_SCORE
        return [1.0 + step * next(mapped) if s != NOT_CHOSEN else 0.0 for s in scores]


def _onto_score_range(scores: Sequence[int]) -> list[float]:
    """Scores already within 0..100 as they are (FGD's sigmoid); others min-max mapped (order kept)."""
    if not scores or (min(scores) >= 0 and max(scores) <= MAX_SCORE):
        return [float(s) for s in scores]
    lo, hi = min(scores), max(scores)
    return [float(MAX_SCORE) if hi == lo else (s - lo) * MAX_SCORE / (hi - lo) for s in scores]


def family_profile(name: str, factory: ScorerFactory, *, symmetric: bool = True) -> Profile:
    """The lane scheduler's profile for one FGD-family member (its score plugin alone)."""
    return Profile(name, (HealthyGpus(), GpuType()), (WeightedScore(FamilyScore(name, factory), 1),), symmetric=symmetric)


def lane_node(node: NodeState) -> NodeView:
    """A milli node as a lane node: GPUs of 1000 units, the used share one resident tenant."""
    gpus = tuple(Gpu(i, f"{node.name}-gpu{i}", node.model, MILLI) for i in range(node.gpu_count))
    lanes: dict[int, GpuLanes] = {}
    for i, left in enumerate(node.gpu_milli_left):
        used = MILLI - left
        lanes[i] = (
            GpuLanes(MILLI, (Lane(_USED_LANE, 0, (_USED,)),), (Tenant(_USED, used, 0, _USED_LANE),), 1)
            if used > 0
            else GpuLanes(MILLI)
        )
    return NodeView(Node(NodeName(node.name), gpus, node.cpu_milli_left, node.memory_mib_left), lanes)


def lane_job(pod: PodShape) -> Job | None:
    """A pod as a lane job (its share as persistent memory); None for a CPU-only pod."""
    if pod.num_gpu == 0 or pod.gpu_milli == 0:
        return None
    return Job(JobId("pod"), pod.gpu_milli, 0, gpus=pod.num_gpu, gpu_types=frozenset(pod.gpu_types))


@dataclass(slots=True)
class ProfileScorer:
    """A registered profile as a milli scorer: one lane scheduling cycle over the feasible nodes."""

    name: str
    profile: Profile
    cacheable: bool = False
    _views: dict[NodeState, NodeView] = field(default_factory=dict)

    def pre_score(self, pod: PodShape, feasible: Sequence[NodeState]) -> CycleState:
        from gpulane_core.registry import Registry
        from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle

        job = lane_job(pod)
        if job is None or not feasible:
            return EMPTY_CYCLE
        views = {}
        for node in feasible:
            view = self._views.get(node)
            if view is None:
                view = self._views[node] = lane_node(node)
            views[NodeName(node.name)] = view
        registry = Registry()
        registry.register_placement(self.name, lambda: self.profile)
        config = SchedulerConfig(placement=self.name, preemption=False)
        result = schedule_cycle(ClusterState(views), [PendingJob(job, 0.0)], config, 0.0, registry=registry)
        if not result.placements:
            return EMPTY_CYCLE
        placed = result.placements[0]
        return CycleState(chosen=placed.node, gpus=tuple(sorted(c.index for c in placed.gpus)))

    def score(self, node: NodeState, pod: PodShape, cycle: CycleState) -> NodeScore:
        if cycle.chosen and node.name == cycle.chosen:
            return NodeScore(MAX_SCORE, cycle.gpus)
        return NodeScore(0, best_fit_gpus(node, pod))

    def normalize(self, scores: Sequence[int]) -> list[int]:
        return list(scores)
