"""Preemption at iteration boundaries (Salus srtf) is safe: hypothesis properties over random mixes.

A time-shared GPU holds every admitted job's persistent memory plus one lane sized for the largest
ephemeral peak; srtf hands the next iteration to the least-remaining job, so a running job is
preempted at a boundary whenever a shorter one arrives. Checked after every scheduling pass and
every iteration: the lane invariant (gpulane_core.lanes.check_invariant, at most one lane per
time-shared GPU), one iteration at a time per GPU, and no iteration lost or repeated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gpulane_core.model import Job, JobClass, JobId
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import Simulation
from gpulane_sim.events import Event
from gpulane_sim.policies import SimPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

_job = st.tuples(
    st.integers(0, 15),  # arrival
    st.integers(0, 4_000),  # persistent
    st.integers(1, 8_000),  # ephemeral
    st.sampled_from([0.5, 1.0, 2.0]),  # iteration_s
    st.integers(1, 8),  # iterations
    st.booleans(),  # best-effort (the scheduler may evict it for a guaranteed job)
)


class CheckedSimulation(Simulation):
    """The engine with the invariants asserted at every decision point."""

    def __init__(self, jobs: Sequence[Job], policy: SimPolicy, config: SimConfig) -> None:
        super().__init__(jobs, policy, config)
        self.iterations_seen: Counter[JobId] = Counter()

    def _check(self) -> None:
        problems = self.state.check_invariants()
        assert not problems, problems
        for view in self.state.nodes.values():
            for lanes in view.lanes.values():
                assert lanes.time_shared and len(lanes.lanes) <= 1
                assert lanes.persistent_mib + lanes.lanes_mib <= lanes.capacity_mib
        assert all(n <= 1 for n in self.computing.values()), self.computing  # one iteration per GPU

    def _schedule(self) -> None:
        super()._schedule()
        self._check()

    def _iteration_done(self, event: Event) -> None:
        assert event.job is not None
        before = self.runs[event.job].done
        super()._iteration_done(event)
        after = self.runs[event.job].done
        assert after - before in (0, 1)  # a stale (evicted) iteration counts nothing, a live one once
        self.iterations_seen[event.job] += after - before
        self._check()


@settings(max_examples=120, deadline=None)
@given(st.lists(_job, min_size=1, max_size=8), st.sampled_from([SimPolicy.SRTF, SimPolicy.SJF, SimPolicy.FAIR]))
def test_preemption_keeps_the_lane_invariant_and_every_iteration_runs_exactly_once(
    specs: list[tuple[int, int, int, float, int, bool]], policy: SimPolicy
) -> None:
    jobs = [
        Job(JobId(f"j{i}"), p, e, arrival_s=float(a), iteration_s=it, iterations=n, working_set_mib=p // 2,
            job_class=JobClass.BEST_EFFORT if be else JobClass.GUARANTEED)
        for i, (a, p, e, it, n, be) in enumerate(specs)
    ]  # fmt: skip
    sim = CheckedSimulation(jobs, policy, SimConfig(gpus=2, gpu_memory_mib=12_000, record_segments=True))
    result = sim.run()
    assert sim.iterations_seen == Counter({j.name: j.iterations for j in jobs})
    computes = Counter(s.job for s in result.segments if s.kind == "compute")
    assert computes == Counter({j.name: j.iterations for j in jobs})  # none lost, none repeated
    for outcome in result.jobs:
        job = next(j for j in jobs if j.name == outcome.job)
        assert abs(outcome.attained_s - job.iterations * job.iteration_s) < 1e-6


def test_a_short_arrival_preempts_the_running_job_which_stays_resident() -> None:
    jobs = [
        Job(JobId("long"), 4_000, 4_000, arrival_s=0.0, iteration_s=1.0, iterations=10),
        Job(JobId("short"), 4_000, 4_000, arrival_s=2.5, iteration_s=1.0, iterations=2),
    ]
    sim = CheckedSimulation(jobs, SimPolicy.SRTF, SimConfig(gpus=1, gpu_memory_mib=12_000, record_segments=True))
    result = sim.run()
    order = [str(s.job) for s in sorted(result.segments, key=lambda s: s.start_s) if s.kind == "compute"]
    assert order == ["long"] * 3 + ["short"] * 2 + ["long"] * 7  # preempted at the boundary at 3 s
    # Both fit on the time-shared GPU at once (4 + 4 persistent + one 4 GiB lane = 12 GiB): the
    # preempted job kept its memory; two separate lanes (16 GiB) would not have fitted.
    finish = {str(o.job): o.finish_s for o in result.jobs}
    assert finish["short"] < finish["long"]
    sjf = CheckedSimulation(jobs, SimPolicy.SJF, SimConfig(gpus=1, gpu_memory_mib=12_000)).run()
    sjf_finish = {str(o.job): o.finish_s for o in sjf.jobs}
    assert sjf_finish["short"] > sjf_finish["long"]  # sjf never preempts: long runs to completion first
