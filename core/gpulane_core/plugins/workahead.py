"""LeastWorkAhead: put a job on the GPU where it adds the least total waiting (SRPT dispatch).

On a GPU that runs one iteration at a time and serves its tenants shortest-remaining-first (the
``srtf`` turn order), a job of work ``w`` joining tenants of work ``w_t`` finishes after the shorter
tenants' work plus its own, and delays every longer tenant by ``w``. Its *marginal flow time* is

    sum(w_t for w_t <= w) + w * (1 + #{w_t > w})

which is what avg JCT grows by. Spread counts memory, which on such a GPU says nothing about how
long the job waits; this plugin counts work. A tenant's work is its estimate (iterations x
iteration time) from the state's job table: the scheduler does not see progress, so this is the
dispatch rule of SRPT with the estimate as the size, exact for a tenant that has not started.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpulane_core.cluster import Placement
from gpulane_core.facts import BoundFacts
from gpulane_core.framework import CycleContext, clamp_normalize
from gpulane_core.model import Job


def marginal_flow_s(work_s: float, tenants_work_s: Iterable[float]) -> float:
    """How much the sum of completion times on one SRPT GPU grows when a job of ``work_s`` joins.

    Ties go to the tenants (an equal tenant keeps its place ahead of the newcomer).
    """
    ahead = 0.0
    behind = 0
    for other in tenants_work_s:
        if other <= work_s:
            ahead += other
        else:
            behind += 1
    return ahead + work_s * (1 + behind)


@dataclass(frozen=True, slots=True)
class LeastWorkAhead:
    name: str = "LeastWorkAhead"

    def score(self, ctx: CycleContext, job: Job, option: Placement) -> float:
        """``w / marginal`` in (0, 1]: 1 on an idle GPU, falling as the job would wait and delay more.

        A fixed map of the marginal alone (no min-max over the options), so the bound below holds
        and the search may prune with it. A multi-GPU job counts its most loaded GPU.
        """
        return self.score_options(ctx, job, (option,))[0]

    def score_options(self, ctx: CycleContext, job: Job, options: Sequence[Placement]) -> list[float]:
        work = job.estimated_duration_s
        if work <= 0:
            return [1.0] * len(options)
        nodes, jobs = ctx.state.nodes, ctx.state.jobs
        out: list[float] = []
        for option in options:
            view = nodes[option.node]
            worst = work
            for choice in option.gpus:
                tenants = view.lanes[choice.index].tenants
                if tenants:  # an idle GPU's marginal flow is the job's own work: worst stays
                    others = [jobs[t.job].estimated_duration_s for t in tenants if t.job in jobs]
                    worst = max(worst, marginal_flow_s(work, others))
            out.append(work / worst)
        return out

    def upper_bound(self, job: Job, facts: BoundFacts) -> float:
        """The best any option can score: an idle GPU (no waiting, no one delayed)."""
        return 1.0

    def normalize(self, scores: Sequence[float]) -> list[float]:
        return clamp_normalize(scores)
