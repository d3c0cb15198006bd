"""Status writes coalesced per job, Events rate-limited, and the scheduling loop without holders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from gpulane_core.podcontract import Assignment
from gpulane_operator import lifecycle, statuses
from gpulane_operator.assignment import parse_pod
from gpulane_operator.crd import Phase, Reason, parse_job
from gpulane_operator.k8s.api import ApiError
from gpulane_operator.k8s.events import BURST, RATE_PER_S, EventPoster, JobRef
from gpulane_operator.k8s.status import StatusWriter
from gpulane_operator.ratelimit import TokenBucket
from gpulane_operator.runtime import CycleRunner
from opfakes import FakeKubeApi, job_body, job_pod_body

NOW = 1767225601.0
A = Assignment(JobId("ns/a"), NodeName("n1"), (0,), ("GPU-0",), LaneId("lane-0"), 1024, 0, 1024, 4, JobClass.GUARANTEED)


def test_scheduled_then_running_compose_into_one_patch_that_keeps_both_conditions() -> None:
    rec = parse_job(job_body("a"))
    placed = statuses.scheduled(rec, A, NOW)
    # The Running decision is made from the job as it will read, not as the watch still shows it.
    current = statuses.overlay(rec, placed)
    assert current.phase is Phase.SCHEDULED and current.scheduled_reason == Reason.PLACED.value
    pod = parse_pod(job_pod_body())
    assert lifecycle.sync(rec, pod, NOW) is None  # the stale record would never say Running
    running = lifecycle.sync(current, pod, NOW + 0.5)
    assert running is not None
    both = statuses.compose(placed, running)["status"]
    assert both["phase"] == "Running" and both["placement"]["node"] == "n1"
    assert {c["type"]: c["status"] for c in both["conditions"]} == {"Scheduled": "True", "Ready": "True"}


def test_a_later_pending_status_clears_the_placement_of_an_earlier_one() -> None:
    rec = parse_job(job_body("a"))
    placed = statuses.scheduled(rec, A, NOW)
    queued = statuses.pending(statuses.overlay(rec, placed), Reason.POD_DELETED, "gone", NOW + 0.1)
    both = statuses.compose(placed, queued)["status"]
    assert both["phase"] == "Pending" and both["placement"] is None
    assert {c["type"]: c["status"] for c in both["conditions"]} == {"Scheduled": "False", "Ready": "False"}


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket.full(50.0, 100.0, 0.0)
    waits = []
    for _ in range(102):
        bucket, wait_s = bucket.take(0.0)
        waits.append(wait_s)
    assert waits[:100] == [0.0] * 100
    assert abs(waits[100] - 0.02) < 1e-9 and abs(waits[101] - 0.04) < 1e-9
    bucket, wait_s = bucket.take(10.0)  # refilled (up to the burst) after a quiet while
    assert wait_s == 0.0 and bucket.tokens == 99.0


async def test_a_jobs_changes_within_the_window_are_one_write() -> None:
    api = FakeKubeApi()
    writer = StatusWriter(api, asyncio.Semaphore(4), statuses.compose, window_s=0.05)
    rec = parse_job(job_body("a"))
    placed = statuses.scheduled(rec, A, NOW)
    writer.put("ns", "a", placed)
    writer.put("ns", "a", statuses.running(statuses.overlay(rec, placed), NOW))
    writer.put("ns", "b", statuses.running(rec, NOW))
    assert api.patches == [] and writer.pending(JobId("ns/a")) is not None
    await asyncio.sleep(0.2)
    assert sorted(name for _, name, _ in api.patches) == ["a", "b"]
    assert api.last_status("a")["phase"] == "Running" and api.last_status("a")["placement"]["node"] == "n1"
    assert writer.pending(JobId("ns/a")) is None
    await writer.close()


class SlowStatusApi(FakeKubeApi):
    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    async def patch_job_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.started += 1
        await asyncio.sleep(0.05)  # an apiserver round trip: the writes are in flight when close() comes
        await super().patch_job_status(namespace, name, patch)


async def test_close_finishes_the_writes_in_flight_and_writes_the_queued_ones() -> None:
    api = SlowStatusApi()
    writer = StatusWriter(api, asyncio.Semaphore(4), statuses.compose, window_s=0.0)
    for name in ("a", "b", "c"):
        writer.put("ns", name, statuses.scheduled(parse_job(job_body(name)), A, NOW))
    await _until(lambda: api.started == 3)
    writer.put("ns", "d", statuses.scheduled(parse_job(job_body("d")), A, NOW), window_s=60.0)
    await writer.close()
    assert sorted(name for _, name, _ in api.patches) == ["a", "b", "c", "d"]


async def test_a_failed_write_is_merged_with_newer_changes_and_retried() -> None:
    api = FakeKubeApi()
    writer = StatusWriter(api, asyncio.Semaphore(4), statuses.compose, window_s=0.0)
    rec = parse_job(job_body("a"))
    api.fail["patch_job_status"] = ApiError(503, "unavailable")
    placed = statuses.scheduled(rec, A, NOW)
    writer.put("ns", "a", placed)
    await asyncio.sleep(0.05)
    assert api.patches == [] and writer.pending(JobId("ns/a")) == placed  # still known, queued again
    await writer.flush()
    assert api.last_status("a")["phase"] == "Scheduled"
    await writer.close()


async def test_events_are_posted_in_the_background_within_the_burst() -> None:
    api = FakeKubeApi()
    poster = EventPoster(api)
    started = time.monotonic()
    for i in range(int(BURST) + 20):
        poster.post(JobRef("ns", f"j{i}", "u"), "Placed", "bound", NOW)
    assert api.events == []  # posting never blocks the caller
    await _until(lambda: len(api.events) == int(BURST) + 20)
    # Past the burst every Event waits for its token (real sleeps, which load only makes longer):
    # 20 at 50/s take at least 0.4 s.
    assert time.monotonic() - started >= 20 / RATE_PER_S - 0.05
    await poster.close()


class SlowEventsApi(FakeKubeApi):
    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
        await asyncio.sleep(0.02)  # an apiserver round trip: a batch is in flight when close() comes
        await super().create_event(namespace, body)


async def test_close_posts_what_still_waits_for_tokens_and_the_batch_in_flight() -> None:
    api = SlowEventsApi()
    poster = EventPoster(api)
    for i in range(int(BURST) + 20):
        poster.post(JobRef("ns", f"j{i}", "u"), "Placed", "bound", NOW)
    await _until(lambda: len(api.events) >= 30)  # mid-burst: the poster is awaiting a batch's requests
    await poster.close()  # neither waits for tokens nor drops the batch it had taken off the queue
    assert len(api.events) == int(BURST) + 20


async def _until(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_cycles_run_after_watch_events_without_holders_and_stop_when_events_stop() -> None:
    ran: list[int] = []

    async def cycle() -> None:
        ran.append(1)

    runner = CycleRunner(cycle, debounce_s=0.0, resync_s=10.0, live_s=0.1)
    runner.seen_event()
    runner.poke()
    await asyncio.sleep(0.05)
    assert len(ran) == 1
    await asyncio.sleep(0.15)  # no watch event for longer than live_s: a paused replica
    runner.poke()
    await asyncio.sleep(0.05)
    assert len(ran) == 1  # a poke without a recent watch event runs nothing
    runner.seen_event()
    await asyncio.sleep(0.05)
    assert len(ran) == 2  # the poke that waited runs once the watch is live again
    await runner.stop()


async def test_a_position_only_change_waits_longer_but_a_real_change_is_not_held_back_by_it() -> None:
    now = [0.0]
    api = FakeKubeApi()
    writer = StatusWriter(api, asyncio.Semaphore(4), statuses.compose, window_s=0.05, clock=lambda: now[0])
    rec = parse_job(job_body("a"))
    writer.put("ns", "a", statuses.pending(rec, Reason.QUEUED, "wait", 0.0, 3), window_s=10.0)
    await asyncio.sleep(0.1)
    assert api.patches == []  # due at 10 s on the writer's clock
    writer.put("ns", "a", statuses.scheduled(rec, A, 0.0))  # due at 0.05 s, not 10 s
    now[0] = 1.0
    await asyncio.sleep(0.1)
    assert [p["status"]["phase"] for _, _, p in api.patches] == ["Scheduled"]
    await writer.close()


def test_only_jobs_that_may_need_a_resync_get_a_daemon() -> None:
    from gpulane_operator.handlers import _is_waiting

    def waiting(reason: str | None, phase: str = "Pending") -> bool:
        conditions = [] if reason is None else [{"type": "Scheduled", "status": "False", "reason": reason}]
        return _is_waiting({"phase": phase, "conditions": conditions}, {})  # type: ignore[arg-type]

    assert not waiting(None)  # a new job: its own watch event pokes the loop
    assert not waiting("Queued")  # moved on by the pod and node events that end the wait
    assert waiting("Unschedulable") and waiting("Retrying") and waiting("Preempted")
    assert not waiting("Unschedulable", phase="Scheduled")


async def test_jobs_listed_during_the_handover_get_their_cycle_after_it() -> None:
    ran: list[int] = []

    async def cycle() -> None:
        ran.append(1)

    start = asyncio.get_running_loop().time()
    runner = CycleRunner(cycle, debounce_s=0.0, resync_s=10.0, not_before=start + 0.2, live_s=0.05)
    runner.seen_event()  # kopf's initial listing, then nothing more
    runner.poke()
    await asyncio.sleep(0.1)
    assert ran == []  # still in the handover
    await asyncio.sleep(0.2)
    assert ran == [1]
    await runner.stop()
