"""One scheduling cycle as a pure function: what the API says in, the actions to take out.

``prepare`` rebuilds the lane state and the queue, ``gpulane_core.scheduler.schedule_cycle`` decides,
and ``plan`` turns its result into API actions. Safety rules live here, not in the handlers:

* a job that has any pod (even one being deleted) is never queued again, so no second pod appears;
* a guaranteed job that preempted best-effort jobs waits until their pods are gone, and nothing
  else is placed on a node in the same cycle in which victims there were released, because a
  victim's memory is only free once its pod has ended;
* charges of ``gpulane.dev/gpu-memory`` stay unique among a node's not-yet-allocated pods.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from gpulane_core.model import Job, JobClass, JobId, NodeName
from gpulane_core.podcontract import Assignment
from gpulane_core.scheduler import CycleResult, PendingJob, Preemption
from gpulane_core.status import Code

from gpulane_operator.assignment import PodRecord, from_placement, pod_name
from gpulane_operator.claims import DEVICE_PLUGIN, DRA, claim_mib, mode, oversized
from gpulane_operator.crd import JobRecord, Phase, Reason
from gpulane_operator.inventory import NodeInventory
from gpulane_operator.podspec import charge_units
from gpulane_operator.published import waiting_message
from gpulane_operator.selectors import SelectorCache, SelectorError
from gpulane_operator.snapshot import Lost, Snapshot, SnapshotMemo, build


@dataclass(frozen=True, slots=True)
class Prepared:
    snapshot: Snapshot
    pending: tuple[PendingJob, ...]
    resumes: tuple[tuple[JobRecord, PodRecord], ...]  # queued jobs whose pod exists: bind/finish them
    invalid: tuple[JobRecord, ...]  # queued jobs whose spec the core rejects
    waiting: Mapping[JobId, frozenset[JobId]]  # preemptors still waiting for victims' pods to end
    unfit: tuple[JobRecord, ...] = ()  # DRA jobs whose claim no device can ever hold (error says why)
    dra: frozenset[JobId] = frozenset()  # queued jobs that run with a ResourceClaim
    unpublished: tuple[JobRecord, ...] = ()  # DRA jobs waiting for a slice to publish a GPU (error says which)


@dataclass(frozen=True, slots=True)
class Unschedulable:
    record: JobRecord
    reason: Reason
    message: str
    position: int | None


@dataclass(frozen=True, slots=True)
class CyclePlan:
    creates: tuple[tuple[JobRecord, Assignment], ...] = ()
    claims: Mapping[JobId, int] = field(default_factory=dict)  # DRA creates: the claim's MiB per GPU
    preemptions: tuple[Preemption, ...] = ()
    unschedulable: tuple[Unschedulable, ...] = ()  # only those whose status must change
    waiting: Mapping[JobId, frozenset[JobId]] = field(default_factory=dict)
    limited: Mapping[JobId, NodeName] = field(default_factory=dict)  # held: the node's device-plugin counts are taken
    blocked: frozenset[NodeName] = frozenset()  # nodes nothing more may go to this cycle (victims still there)


def live_assignments(pods: Mapping[JobId, PodRecord], assumed: Mapping[JobId, Assignment]) -> dict[JobId, Assignment]:
    """Pods the watch has shown win; assumed placements fill the gap until it does."""
    live = {job: a for job, a in assumed.items() if job not in pods}
    for job, pod in pods.items():
        if pod.holds_memory and pod.assignment is not None:
            live[job] = pod.assignment
    return live


def prepare(
    jobs: Mapping[JobId, JobRecord],
    pods: Mapping[JobId, PodRecord],
    assumed: Mapping[JobId, Assignment],
    inventory: Mapping[NodeName, NodeInventory],
    waiting: Mapping[JobId, frozenset[JobId]],
    inflight: Collection[JobId] = (),
    seen: Mapping[JobId, float] | None = None,
    *,
    now: float | None = None,
    loss_grace_s: float | None = None,
    existing_nodes: Collection[str] = frozenset(),
    foreign: Collection[Assignment] = (),
    allocation: str = DEVICE_PLUGIN,
    selectors: SelectorCache | None = None,
    published: Collection[str] | None = None,
    memo: SnapshotMemo | None = None,
) -> Prepared:
    """``foreign``: memory of claims others allocated (claims.foreign_assignments); ``allocation``: the
    mode of jobs that name none; ``selectors``: the runtime's cache (a fresh one when None);
    ``published``: UUIDs of the GPUs gpu.gpulane.dev ResourceSlices publish, the only ones a DRA job may
    get (published.py; the cycle always passes them, None leaves DRA jobs ungated); ``memo``: the runtime's
SnapshotMemo (lane states of unchanged GPUs are reused)."""
    known: dict[JobId, Job] = {j: r.job for j, r in jobs.items() if r.job is not None}
    snapshot = build(inventory, [*live_assignments(pods, assumed).values(), *foreign], known, now=now,
                     loss_grace_s=loss_grace_s, existing_nodes=existing_nodes, memo=memo)  # fmt: skip
    cache = selectors if selectors is not None else SelectorCache()
    gpus = [g for inv in inventory.values() for g in inv.node.gpus]
    every_gpu = frozenset(g.uuid for g in gpus)
    shown = None if published is None else frozenset(published)
    unfit: list[JobRecord] = []
    unpublished: list[JobRecord] = []
    dra: set[JobId] = set()
    still_waiting = {
        job: victims
        for job, victims in waiting.items()
        if job in jobs and jobs[job].pending and any(v in pods for v in victims)
    }
    pending: list[PendingJob] = []
    resumes: list[tuple[JobRecord, PodRecord]] = []
    invalid: list[JobRecord] = []
    for rec in sorted(jobs.values(), key=lambda r: r.id):
        if not rec.pending or rec.id in inflight:
            continue
        pod = pods.get(rec.id)
        if pod is not None:
            if not pod.deleting and not pod.terminal and pod.assignment is not None:
                resumes.append((rec, pod))
            continue
        if rec.id in assumed:
            continue
        if rec.job is None:
            invalid.append(rec)
            continue
        if rec.id in still_waiting:
            continue
        job = rec.job
        if mode(rec, allocation) == DRA:
            problem = oversized(pod_name(rec.name), job.footprint_mib, inventory)
            if problem is not None:
                unfit.append(replace(rec, error=problem))
                continue
            eligible: frozenset[str] | None = None
            if rec.selectors:
                try:
                    eligible = cache.eligible(rec.selectors, gpus)
                except SelectorError as exc:
                    invalid.append(replace(rec, job=None, error=str(exc)))
                    continue
            if shown is not None:
                candidates = eligible if eligible is not None else every_gpu
                allowed = candidates & shown
                if candidates and not allowed:  # none published yet: wait (no candidates: the core says why)
                    unpublished.append(replace(rec, error=waiting_message(len(candidates))))
                    continue
                if eligible is not None or allowed != candidates:  # no needless narrowing of the search
                    eligible = allowed
            if eligible is not None:
                job = replace(job, allowed_gpus=eligible)
            dra.add(rec.id)
        elif rec.selectors:
            invalid.append(replace(rec, job=None, error=(
                "spec.deviceSelectors: only DRA jobs can select devices, and this one runs with the device plugin"
                " (spec.allocation is unset and the operator's scheduling.allocation is device-plugin)")))  # fmt: skip
            continue
        pending.append(PendingJob(job, arrival(rec, (seen or {}).get(rec.id))))
    return Prepared(snapshot, tuple(pending), tuple(resumes), tuple(invalid), still_waiting, tuple(unfit),
                    frozenset(dra), tuple(unpublished))  # fmt: skip


def pods_lost_while_away(
    jobs: Mapping[JobId, JobRecord],
    pods: Mapping[JobId, PodRecord],
    assumed: Collection[JobId],
    busy: Collection[JobId],
) -> list[JobRecord]:
    """Scheduled or Running jobs with no pod, as a replica's first cycle finds them: the pod was deleted
    while no operator watched, so no DELETED event will ever requeue them. Only at startup (after the
    handover): then the pod listing is complete and no predecessor is still writing. Should the pod
    show up after all, the job is Pending with a pod, which a cycle resumes (binds and reports)."""
    return [
        rec
        for job, rec in sorted(jobs.items())
        if rec.phase in (Phase.SCHEDULED, Phase.RUNNING)
        and not rec.deleting
        and job not in pods
        and job not in assumed
        and job not in busy
    ]


def arrival(rec: JobRecord, seen_s: float | None) -> float:
    """When the job joined the queue. creationTimestamp has whole seconds only; within that second the
    time this operator first saw the job (watch order is creation order) breaks ties, so FIFO is FIFO."""
    base = rec.queued_s or rec.created_s
    if seen_s is not None and base <= seen_s < base + 1.0:
        return seen_s
    return base


def taken_charges(
    pods: Mapping[JobId, PodRecord], assumed: Mapping[JobId, Assignment]
) -> tuple[dict[NodeName, set[int]], dict[NodeName, int]]:
    """Per node: the charges of pods not yet allocated (each must stay unique there), and the units of
    every live pod (what the kubelet counts against the node's allocatable once it admits them)."""
    taken: dict[NodeName, set[int]] = {}
    charged: dict[NodeName, int] = {}
    for pod in pods.values():
        if pod.assignment is not None and pod.holds_memory:
            node = pod.assignment.node
            charged[node] = charged.get(node, 0) + pod.assignment.charge_units
            if not pod.allocated:
                taken.setdefault(node, set()).add(pod.assignment.charge_units)
    for job, a in assumed.items():
        if job not in pods:
            taken.setdefault(a.node, set()).add(a.charge_units)
            charged[a.node] = charged.get(a.node, 0) + a.charge_units
    return taken, charged


def plan(
    prepared: Prepared,
    result: CycleResult,
    jobs: Mapping[JobId, JobRecord],
    pods: Mapping[JobId, PodRecord],
    assumed: Mapping[JobId, Assignment],
) -> CyclePlan:
    snapshot = prepared.snapshot
    victims_on: set[NodeName] = set()
    for p in result.preemptions:
        placed = snapshot.state.placements.get(p.victim)
        if placed is not None:
            victims_on.add(placed.node)
    preemptors = {p.for_job for p in result.preemptions}
    waiting = dict(prepared.waiting)
    for job in preemptors:
        waiting[job] = frozenset(p.victim for p in result.preemptions if p.for_job == job)
    taken, charged = taken_charges(pods, assumed)
    creates: list[tuple[JobRecord, Assignment]] = []
    claims: dict[JobId, int] = {}
    held: list[JobId] = []
    no_room: dict[JobId, str] = {}
    for placement in result.placements:
        if placement.job in preemptors or placement.node in victims_on:
            held.append(placement.job)
            continue
        rec = jobs[placement.job]
        assert rec.job is not None  # only parsed jobs are queued
        node = placement.node
        if placement.job in prepared.dra:
            # No device plugin count: the claim carries the memory, and the kubelet counts no units for it.
            claims[placement.job] = claim_mib((c.plan.growth_mib for c in placement.gpus), snapshot.unit_mib.get(node, 256))
            creates.append((rec, from_placement(rec.job, placement, 0)))
            continue
        node_taken = taken.setdefault(node, set())
        capacity = snapshot.device_units.get(node)
        room = None if capacity is None else capacity - charged.get(node, 0)
        units = charge_units(placement, snapshot.unit_mib.get(node, 256), node_taken, room)
        if units is None:
            held.append(placement.job)
            # No counts in the message: it is written to the job's status only when it changes.
            no_room[placement.job] = (
                f"waiting for the device plugin on {node} to allocate the pods placed there: each pod awaiting "
                f"allocation needs its own count of gpulane.dev/gpu-memory units, no more than its charge and "
                f"within the node's {capacity if capacity is not None else 'advertised'} units"
            )
            continue
        node_taken.add(units)
        charged[node] = charged.get(node, 0) + units
        creates.append((rec, from_placement(rec.job, placement, units)))
    position = {job: i + 1 for i, job in enumerate(result.queue)}
    changes: list[Unschedulable] = []
    for job in held:
        rec = jobs[job]
        victims = waiting.get(job, frozenset())
        if job in no_room:
            msg, reason = no_room[job], Reason.QUEUED
        elif victims:
            msg = f"preempting {len(victims)} best-effort job(s): {', '.join(sorted(victims))}"
            reason = Reason.PREEMPTING
        else:
            msg = "waiting for preempted jobs on the chosen node to release their lanes"
            reason = Reason.QUEUED
        if rec.scheduled_reason != reason.value or rec.scheduled_message != msg:
            changes.append(Unschedulable(rec, reason, msg, position.get(job)))
    for job, status in sorted(result.unschedulable.items()):
        if job not in jobs:
            continue
        rec = jobs[job]
        reason = Reason.QUEUED if status.code is Code.WAIT else Reason.UNSCHEDULABLE
        msg = status.message or "no GPU can hold the job now"
        pos = position.get(job)
        if rec.scheduled_reason != reason.value or rec.scheduled_message != msg or rec.queue_position != pos:
            changes.append(Unschedulable(rec, reason, msg, pos))
    limited = {p.job: p.node for p in result.placements if p.job in no_room}
    return CyclePlan(tuple(creates), claims, result.preemptions, tuple(changes), waiting, limited, frozenset(victims_on))


def lost_to_handle(lost: tuple[Lost, ...], jobs: Mapping[JobId, JobRecord]) -> list[Lost]:
    """The lost placements of jobs still running somewhere that vanished (not finished, not being deleted)."""
    return [
        item
        for item in lost
        if (rec := jobs.get(item.job)) is not None and not rec.phase.terminal and not rec.deleting
    ]


def job_counts(jobs: Mapping[JobId, JobRecord]) -> tuple[dict[str, int], dict[str, int]]:
    """(queued jobs by class, jobs by phase): the values of the queue-length and jobs gauges."""
    queued = {c.value: 0 for c in JobClass}
    phases: dict[str, int] = {}
    for rec in jobs.values():
        phases[rec.phase.value] = phases.get(rec.phase.value, 0) + 1
        if rec.pending and rec.job is not None:
            queued[rec.job.job_class.value] += 1
    return queued, phases
