"""Hand-computed timelines reproduced exactly by the simulator (seed 000's three cases included).

Bandwidth is 1 MiB/s, so a working set of N MiB takes N seconds to copy; every job fits in memory.
"""

from __future__ import annotations

from gpulane_core.model import Job, JobClass, JobId
from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.policies import SimPolicy
from gpulane_sim.result import SimResult

MIB = 2**20


def _cfg(prefetch: bool, gpus: int = 1) -> SimConfig:
    return SimConfig(gpus=gpus, bandwidth_bytes_s=MIB, prefetch=prefetch, record_segments=True)


def _timeline(result: SimResult) -> list[tuple[str, str, float, float]]:
    segs = sorted(result.segments, key=lambda s: (s.start_s, s.kind))
    return [(str(s.job), s.kind, s.start_s, s.end_s) for s in segs]


def _finish(result: SimResult) -> dict[str, float]:
    return {str(o.job): o.finish_s for o in result.jobs}


TWO = [
    Job(JobId("A"), 100, 100, iteration_s=2.0, iterations=2, working_set_mib=1),
    Job(JobId("B"), 100, 100, iteration_s=3.0, iterations=2, working_set_mib=2),
]


def test_two_jobs_fifo_without_prefetch() -> None:
    # A loads 0-1 and runs 1-3, 3-5 (still resident); B loads 5-7, runs 7-10, 10-13.
    r = simulate(TWO, SimPolicy.FIFO, _cfg(False))
    assert _timeline(r) == [
        ("A", "transfer", 0, 1), ("A", "compute", 1, 3), ("A", "compute", 3, 5),
        ("B", "transfer", 5, 7), ("B", "compute", 7, 10), ("B", "compute", 10, 13),
    ]  # fmt: skip
    assert r.makespan_s == 13 and _finish(r) == {"A": 5, "B": 13}
    assert r.bytes_moved == 3 * MIB and r.transfers == 2


def test_two_jobs_fifo_with_prefetch() -> None:
    # B, the runner-up, is copied 1-3 while A computes its first iteration (prefetch targets the job
    # that goes once the holder stops asking); A runs on 3-5, B runs 5-8, 8-11.
    r = simulate(TWO, SimPolicy.FIFO, _cfg(True))
    assert _timeline(r) == [
        ("A", "transfer", 0, 1), ("A", "compute", 1, 3), ("B", "transfer", 1, 3), ("A", "compute", 3, 5),
        ("B", "compute", 5, 8), ("B", "compute", 8, 11),
    ]  # fmt: skip
    assert r.makespan_s == 11


def test_two_jobs_fair_alternates_and_pays_every_switch() -> None:
    # FAIR: least attained first. A 0-1 load, 1-3 run (A=2); B 3-5 load, 5-8 run (B=3);
    # A 8-9 load, 9-11 run (A done); B 11-13 load, 13-16 run.
    r = simulate(TWO, SimPolicy.FAIR, _cfg(False))
    assert _timeline(r) == [
        ("A", "transfer", 0, 1), ("A", "compute", 1, 3), ("B", "transfer", 3, 5), ("B", "compute", 5, 8),
        ("A", "transfer", 8, 9), ("A", "compute", 9, 11), ("B", "transfer", 11, 13), ("B", "compute", 13, 16),
    ]  # fmt: skip
    assert _finish(r) == {"A": 11, "B": 16} and r.bytes_moved == 6 * MIB


def test_two_jobs_fair_with_prefetch_hides_every_copy_but_the_first() -> None:
    # A 0-1 load, 1-3 run while B is copied 1-3; B 3-6 while A is copied 3-4; A 6-8 while B 6-8; B 8-11.
    r = simulate(TWO, SimPolicy.FAIR, _cfg(True))
    assert _timeline(r) == [
        ("A", "transfer", 0, 1), ("A", "compute", 1, 3), ("B", "transfer", 1, 3), ("B", "compute", 3, 6),
        ("A", "transfer", 3, 4), ("A", "compute", 6, 8), ("B", "transfer", 6, 8), ("B", "compute", 8, 11),
    ]  # fmt: skip
    assert _finish(r) == {"A": 8, "B": 11} and r.bytes_moved == 6 * MIB


THREE = [
    Job(JobId("A"), 100, 100, iteration_s=10.0, working_set_mib=5),
    Job(JobId("B"), 100, 100, iteration_s=2.0, working_set_mib=8),
    Job(JobId("C"), 100, 100, iteration_s=6.0, working_set_mib=3),
]


def _order(text: str) -> list[JobId]:
    return [JobId(c) for c in text]


def test_seed_000_case_1_no_prefetch() -> None:
    # Order A, B, C: every copy stalls the GPU. 5 + 10 + 8 + 2 + 3 + 6 = 34.
    r = simulate(THREE, SimPolicy.GA, _cfg(False), _order("ABC"))
    assert _timeline(r) == [
        ("A", "transfer", 0, 5), ("A", "compute", 5, 15), ("B", "transfer", 15, 23), ("B", "compute", 23, 25),
        ("C", "transfer", 25, 28), ("C", "compute", 28, 34),
    ]  # fmt: skip
    assert r.makespan_s == 34
    # Without prefetch the order cannot help: the sum is the same.
    assert simulate(THREE, SimPolicy.GA, _cfg(False), _order("CAB")).makespan_s == 34


def test_seed_000_case_2_prefetch() -> None:
    # A 0-5 copy, 5-15 run; B copied 5-13 under A, runs 15-17; C copied 15-18 under B, runs 18-24.
    r = simulate(THREE, SimPolicy.GA, _cfg(True), _order("ABC"))
    assert _timeline(r) == [
        ("A", "transfer", 0, 5), ("A", "compute", 5, 15), ("B", "transfer", 5, 13), ("B", "compute", 15, 17),
        ("C", "transfer", 15, 18), ("C", "compute", 18, 24),
    ]  # fmt: skip
    assert r.makespan_s == 24


def test_seed_000_case_3_prefetch_and_a_better_order() -> None:
    # C 0-3 copy, 3-9 run; A copied 3-8 under C, runs 9-19; B copied 9-17 under A, runs 19-21.
    r = simulate(THREE, SimPolicy.GA, _cfg(True), _order("CAB"))
    assert _timeline(r) == [
        ("C", "transfer", 0, 3), ("C", "compute", 3, 9), ("A", "transfer", 3, 8), ("A", "compute", 9, 19),
        ("B", "transfer", 9, 17), ("B", "compute", 19, 21),
    ]  # fmt: skip
    assert r.makespan_s == 21
    # The weight policy finds that order by itself: nothing ran yet, so all weights are 0 and the
    # smaller penalty ranks first (C 3 s, A 5 s, B 8 s); the queue interleave puts C first, and once
    # C runs, A (penalty 5) outranks B (penalty 8) for the next turn.
    w = simulate(THREE, SimPolicy.WEIGHT, _cfg(True))
    assert _timeline(w) == _timeline(r)


def test_pack_runs_lanes_concurrently_sharing_one_copy_engine() -> None:
    # Three lanes on one GPU: copies serialize (A 0-5, B 5-13, C 13-16), computes overlap:
    # A 5-15, B 13-15, C 16-22.
    r = simulate(THREE, SimPolicy.PACK, _cfg(True))
    assert _finish(r) == {"A": 15, "B": 15, "C": 22}
    assert r.gpu_busy_s == (15 - 5) + (22 - 16)


def test_colocation_slowdown_stretches_concurrent_iterations() -> None:
    jobs = [Job(JobId(n), 100, 100, iteration_s=4.0, working_set_mib=0) for n in "XY"]
    cfg = SimConfig(gpus=1, colocation_slowdown=0.5)
    r = simulate(jobs, SimPolicy.PACK, cfg)
    # X starts alone (4 s); Y starts while X computes: 4 * (1 + 0.5) = 6 s.
    assert _finish(r) == {"X": 4, "Y": 6}


def test_guaranteed_arrival_preempts_best_effort_which_resumes_later() -> None:
    # One 12,000 MiB GPU; each job needs 10,000 MiB, so they cannot share it.
    # be runs 0-1, 1-2, 2-3, and its 3-4 iteration is cut at 3.5 when g arrives (guaranteed):
    # g runs 3.5-4.5, 4.5-5.5; be is re-queued with 3 iterations done and runs 7 more, 5.5-12.5.
    be = Job(JobId("be"), 6000, 4000, iteration_s=1, iterations=10, job_class=JobClass.BEST_EFFORT)
    g = Job(JobId("g"), 6000, 4000, arrival_s=3.5, iteration_s=1, iterations=2)
    r = simulate([be, g], SimPolicy.FIFO, SimConfig(gpus=1, gpu_memory_mib=12_000, record_segments=True))
    assert _finish(r) == {"be": 12.5, "g": 5.5}
    be_runs = [(s.start_s, s.end_s) for s in sorted(r.segments, key=lambda s: s.start_s) if s.job == "be"]
    assert be_runs[:4] == [(0, 1), (1, 2), (2, 3), (5.5, 6.5)]  # the cut iteration left no segment
    assert next(o for o in r.jobs if o.job == "be").attained_s == 10
