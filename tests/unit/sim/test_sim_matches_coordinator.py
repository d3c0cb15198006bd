"""The simulator and the node coordinator take turns by the same rules (gpulane_core.turns).

Property: one lane, the same jobs (arrival, iteration time, iterations), the same policy; the
simulator's compute segments and the coordinator's grants name the same jobs in the same order. The
coordinator is driven the way a client drives it: hello and request_turn at the job's arrival,
turn_done with the iteration's compute time (asking again while iterations remain), then leave.
"""

from __future__ import annotations

import heapq

from gpulane_agent.coordinator.lane import ConnId
from gpulane_agent.coordinator.machine import Coordinator, Effect, Send
from gpulane_agent.coordinator.protocol import Hello, Leave, RequestTurn, TurnDone, TurnGranted
from gpulane_agent.coordinator.settings import TurnSettings
from gpulane_core.model import Job, JobId, LaneId
from gpulane_core.ordering import OrderingPolicy, TurnStats, order
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.policies import SimPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

LANE = LaneId("GPU-0/gpu")
SHARED = {
    OrderingPolicy.FIFO: SimPolicy.FIFO,
    OrderingPolicy.SRTF: SimPolicy.SRTF,
    OrderingPolicy.FAIR: SimPolicy.FAIR,
}

jobs_strategy = st.lists(
    st.tuples(st.integers(0, 12), st.integers(1, 4), st.integers(1, 6)),  # arrival, iteration s, iterations
    min_size=1,
    max_size=5,
).map(
    lambda rows: [
        Job(JobId(f"j{i}"), 10, 10, arrival_s=float(a), iteration_s=float(it), iterations=n)
        for i, (a, it, n) in enumerate(rows)
    ]
)


def sim_turns(jobs: list[Job], policy: OrderingPolicy) -> list[str]:
    result = simulate(jobs, SHARED[policy], SimConfig(gpus=1, prefetch=False, record_segments=True))
    computes = sorted((s for s in result.segments if s.kind == "compute"), key=lambda s: s.start_s)
    return [str(s.job) for s in computes]


def coordinator_turns(jobs: list[Job], policy: OrderingPolicy) -> list[str]:
    machine = Coordinator(TurnSettings(policy=policy, turn_timeout_s=1e9, timeout_factor=0))
    conn = {j.name: ConnId(i) for i, j in enumerate(jobs)}
    job_of = {c: j for j, c in conn.items()}
    by_name = {j.name: j for j in jobs}
    left = {j.name: j.iterations for j in jobs}
    granted: list[str] = []
    ends: list[tuple[float, str, int]] = []  # (end time, job, turn id) of the running iteration

    def apply(effects: list[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Send) and isinstance(effect.message, TurnGranted):
                job = job_of[effect.conn]
                granted.append(str(job))
                heapq.heappush(ends, (now + by_name[job].iteration_s, job, effect.message.turn_id))

    arrivals = sorted({j.arrival_s for j in jobs})
    while arrivals or ends:
        # Iterations ending at an instant are handled before that instant's arrivals (as in the simulator).
        if ends and (not arrivals or ends[0][0] <= arrivals[0]):
            now, job, turn = heapq.heappop(ends)
            left[JobId(job)] -= 1
            again = left[JobId(job)] > 0
            apply(machine.handle(conn[JobId(job)], TurnDone(turn, by_name[JobId(job)].iteration_s, again=again), now), now)
            if not again:
                apply(machine.handle(conn[JobId(job)], Leave(), now), now)
            continue
        now = arrivals.pop(0)
        arriving = [j for j in jobs if j.arrival_s == now]
        # Jobs arriving together reach the lane in the scheduler's queue order for the policy.
        stats = [TurnStats(j.name, j.arrival_s, remaining_s=j.estimated_duration_s) for j in arriving]
        for name in order(policy, stats):
            job = by_name[name]
            apply(machine.handle(conn[name], Hello(name, LANE, remaining_s=job.estimated_duration_s), now), now)
            apply(machine.handle(conn[name], RequestTurn(), now), now)
    return granted


@settings(max_examples=150, deadline=None)
@given(jobs_strategy, st.sampled_from(sorted(SHARED, key=lambda p: p.value)))
def test_simulator_and_coordinator_grant_the_same_turn_sequence(jobs: list[Job], policy: OrderingPolicy) -> None:
    assert sim_turns(jobs, policy) == coordinator_turns(jobs, policy)


def test_srtf_preempts_a_long_job_for_a_shorter_arrival_in_both() -> None:
    jobs = [
        Job(JobId("long"), 10, 10, arrival_s=0.0, iteration_s=2.0, iterations=5),
        Job(JobId("short"), 10, 10, arrival_s=3.0, iteration_s=1.0, iterations=2),
    ]
    expected = ["long", "long", "short", "short", "long", "long", "long"]
    assert sim_turns(jobs, OrderingPolicy.SRTF) == coordinator_turns(jobs, OrderingPolicy.SRTF) == expected
