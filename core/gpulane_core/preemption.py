"""Choosing best-effort victims for a guaranteed job that fits nowhere (AntMan/DART classes).

A pure choice: given the state and the job, return the smallest set of best-effort jobs whose
release lets the job fit, or None. Guaranteed jobs are never victims. Among all GPUs (1-GPU jobs) or
nodes (multi-GPU jobs) the plan with the fewest victims wins, then the lowest highest-priority among
them, then the lowest priority sum, then node and GPU order, so the choice is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulane_core.cluster import ClusterState
from gpulane_core.model import Job, JobClass, JobId, NodeName


@dataclass(frozen=True, slots=True)
class VictimPlan:
    node: NodeName
    gpus: tuple[int, ...]
    victims: tuple[JobId, ...]


def _fits_on(state: ClusterState, job: Job, node: NodeName, gpus: tuple[int, ...]) -> bool:
    return any(job.gpus > 1 or option.first.index in gpus for option in state.candidates(job, node))


def _victim_key(state: ClusterState, job: JobId) -> tuple[int, int, str]:
    j = state.jobs[job]
    # Lowest priority first; among equals the largest, so fewer victims are needed.
    return (j.priority, -j.footprint_mib, job)


def _evictable(state: ClusterState, jobs: list[JobId]) -> bool:
    return all(j in state.jobs and state.jobs[j].job_class is JobClass.BEST_EFFORT for j in jobs)


def _release(state: ClusterState, victims: list[JobId]) -> ClusterState:
    for v in victims:
        state = state.unreserve(v)
    return state


def _minimal(
    state: ClusterState, job: Job, node: NodeName, gpus: tuple[int, ...], victims: list[JobId]
) -> list[JobId]:
    """Drop victims that are not needed after all (reprieve, highest priority first)."""
    kept = list(victims)
    for v in sorted(victims, key=lambda j: _victim_key(state, j), reverse=True):
        trial = [k for k in kept if k != v]
        if _fits_on(_release(state, trial), job, node, gpus):
            kept = trial
    return kept


def _plan_single(state: ClusterState, job: Job) -> list[VictimPlan]:
    plans: list[VictimPlan] = []
    for name, view in state.nodes.items():
        for gpu in view.node.gpus:
            if not gpu.healthy or not job.accepts(gpu) or job.footprint_mib > gpu.memory_mib:
                continue
            tenants = [t.job for t in view.lanes[gpu.index].tenants]
            movable = sorted(
                (j for j in tenants if _evictable(state, [j])), key=lambda j: _victim_key(state, j)
            )
            if not movable:
                continue
            chosen: list[JobId] = []
            trial = state
            for v in movable:
                chosen.append(v)
                trial = trial.unreserve(v)
                if _fits_on(trial, job, name, (gpu.index,)):
                    break
            else:
                continue
            kept = _minimal(state, job, name, (gpu.index,), chosen)
            plans.append(VictimPlan(name, (gpu.index,), tuple(kept)))
    return plans


def _plan_multi(state: ClusterState, job: Job) -> list[VictimPlan]:
    plans: list[VictimPlan] = []
    for name, view in state.nodes.items():
        costs: list[tuple[int, int, list[JobId]]] = []
        for gpu in view.node.gpus:
            if not gpu.healthy or not job.accepts(gpu) or job.footprint_mib > gpu.memory_mib:
                continue
            tenants = [t.job for t in view.lanes[gpu.index].tenants]
            if _evictable(state, tenants):
                costs.append((len(tenants), gpu.index, tenants))
        if len(costs) < job.gpus:
            continue
        costs.sort(key=lambda c: (c[0], c[1]))
        picked = costs[: job.gpus]
        victims = sorted({v for c in picked for v in c[2]})
        if not victims:
            continue  # it would fit already; not a preemption case
        gpus = tuple(sorted(c[1] for c in picked))
        if _fits_on(_release(state, victims), job, name, gpus):
            plans.append(VictimPlan(name, gpus, tuple(victims)))
    return plans


def plan_preemption(state: ClusterState, job: Job) -> VictimPlan | None:
    """The cheapest set of best-effort victims that makes room for ``job``; None if none does."""
    if job.job_class is not JobClass.GUARANTEED:
        return None
    plans = _plan_multi(state, job) if job.gpus > 1 else _plan_single(state, job)
    if not plans:
        return None

    def cost(p: VictimPlan) -> tuple[int, int, int, str, tuple[int, ...]]:
        prios = [state.jobs[v].priority for v in p.victims]
        return (len(p.victims), max(prios), sum(prios), p.node, p.gpus)

    return min(plans, key=cost)
