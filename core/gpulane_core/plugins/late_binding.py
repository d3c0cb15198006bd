"""JoinWhenFirst: a job joins a busy lane only when the lane's shortest-first turns would serve it first.

A job bound to a lane holds its persistent memory there, and the lane's size covers its ephemeral
peak, from placement until it finishes; it cannot move to another lane or GPU that frees up later.
Under shortest-remaining-first turns a job that joins a lane behind a shorter member only waits in
it: it gains nothing by binding early, but the memory it holds keeps other lanes from opening, and
long jobs piled into one lane run one after another at the end while the other lanes sit idle
(makespan). Such a job stays in the queue, unbound, until a new lane opens for it (anywhere) or a
lane's members are all longer than it (then it preempts them at the next iteration boundary, which
is what sharing is for).

The test reads the estimates (``Job.estimated_duration_s``): the scheduler does not see progress,
so a member's remaining time is anywhere between 0 and its estimate. A job joins when it is shorter
than every member's *expected* remaining time, half its estimate (``margin``): a member that already
ran longer would keep the lane, and the newcomer would wait there bound (a 120 s job joining a 120 s
member that had run 100 s waits 20 s, then runs alone while the other GPU idles).
A job without an estimate, or a lane member without one, passes (there is nothing to rank by).
New lanes and whole-GPU options always pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.framework import CycleContext
from gpulane_core.lanes import AdmissionKind
from gpulane_core.model import Job
from gpulane_core.status import Status

_OK = Status.success()
_JOINS = (AdmissionKind.SHARE_LANE, AdmissionKind.GROW_LANE)


@dataclass(frozen=True, slots=True)
class JoinWhenFirst:
    margin: float = 0.5  # a member's expected remaining time, as a fraction of its estimate
    name: str = "JoinWhenFirst"

    def filter(self, ctx: CycleContext, job: Job, option: Placement) -> Status:
        work = job.estimated_duration_s
        if work <= 0:
            return _OK
        jobs = ctx.state.jobs
        for choice in option.gpus:
            if choice.plan.kind not in _JOINS:
                continue
            lane = ctx.state.nodes[option.node].lanes[choice.index].lane(choice.plan.lane)
            # The first member expected to keep the turns (the only one the message names).
            ahead = next((m for m in lane.jobs if 0 < jobs[m].estimated_duration_s * self.margin <= work), None)
            if ahead is not None:
                left = jobs[ahead].estimated_duration_s * self.margin
                return Status.unschedulable(
                    f"{option.node}/gpu{choice.index} {choice.plan.lane}: {ahead} would keep the turns"
                    f" (expected {left:.1f} s left <= {work:.1f} s); waits for a lane of its own",
                    self.name,
                )
        return _OK
