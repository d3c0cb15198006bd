"""WaitForLeastWork: on time-shared GPUs, a job waits unbound rather than bind where it is stranded.

``least-work`` puts a job on the GPU where it adds the least waiting (SRPT dispatch,
:mod:`gpulane_core.plugins.workahead`), but only among the GPUs that have memory for it *now*. When
the GPU with the least work ahead is momentarily full (its tenants' persistent memory plus the lane
peak), the job binds to a busier one and stays there: a bound job never moves, so two long jobs end up
one after the other on one GPU while the other GPU drains and idles. Which GPU happens to have room at
the instant of placement then decides the makespan (a run whose iterations end a little earlier, with
prefetch on, places a long job a few seconds earlier, on the busier GPU: 503 s instead of 482 s on a
heavy-tailed bursty mix under ``fair``).

Delay scheduling: an option passes when the job's marginal flow time there
(:func:`~gpulane_core.plugins.workahead.marginal_flow_s`) is within ``slack`` of the job's own
work of the least marginal flow over every GPU that could ever hold it (healthy, of a type it accepts,
large enough when empty), full or not. Otherwise the job stays in the queue, holding no memory, until
that GPU has room or the loads change. The best GPU's flow only falls as it works, and an empty GPU
always admits the job, so a job is never refused forever. Jobs without an estimate, and multi-GPU
jobs, pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.framework import CycleContext
from gpulane_core.lanes import Tenant
from gpulane_core.model import Job
from gpulane_core.plugins.workahead import marginal_flow_s
from gpulane_core.status import Status

_OK = Status.success()


@dataclass(frozen=True, slots=True)
class WaitForLeastWork:
    slack: float = 0.25  # extra waiting accepted, as a fraction of the job's own work
    name: str = "WaitForLeastWork"

    def filter(self, ctx: CycleContext, job: Job, option: Placement) -> Status:
        work = job.estimated_duration_s
        if work <= 0 or job.gpus > 1:
            return _OK
        view = ctx.state.nodes[option.node]
        here = marginal_flow_s(work, self._tenant_work(ctx, view.lanes[option.first.index].tenants))
        if here <= (1.0 + self.slack) * work + 1e-9:
            return _OK  # no GPU does better than the job's own work (an idle GPU): no scan needed
        key = (self.name, job.name)
        best = ctx.memo.get(key)
        if not isinstance(best, float):
            best = self._least_flow(ctx, job)
            ctx.memo[key] = best
        if here <= best + self.slack * work + 1e-9:
            return _OK
        return Status.unschedulable(
            f"{option.node}/gpu{option.first.index}: the job would add {here:.1f} s of waiting there,"
            f" {best:.1f} s on a GPU that is full for now; waits for it",
            self.name,
        )

    def _least_flow(self, ctx: CycleContext, job: Job) -> float:
        work = job.estimated_duration_s
        best = float("inf")
        for view in ctx.state.nodes.values():
            for gpu in view.node.gpus:
                if not gpu.healthy or not job.accepts(gpu) or gpu.memory_mib < job.footprint_mib:
                    continue
                tenants = view.lanes[gpu.index].tenants
                if not tenants:
                    return work  # an idle GPU: no GPU does better
                best = min(best, marginal_flow_s(work, self._tenant_work(ctx, tenants)))
        return best

    @staticmethod
    def _tenant_work(ctx: CycleContext, tenants: tuple[Tenant, ...]) -> list[float]:
        jobs = ctx.state.jobs
        return [jobs[t.job].estimated_duration_s for t in tenants if t.job in jobs]
