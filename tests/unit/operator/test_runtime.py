from __future__ import annotations

import asyncio
import itertools

from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from gpulane_core.podcontract import Assignment
from gpulane_operator.metrics import OperatorMetrics
from gpulane_operator.runtime import CycleRunner, Runtime
from gpulane_operator.settings import OperatorSettings
from gpulane_operator.stores import ASSUMED_TTL_S
from opfakes import FakeKubeApi

A = Assignment(JobId("ns/a"), NodeName("n1"), (0,), ("GPU-0",), LaneId("lane-0"), 1024, 0, 1024, 4, JobClass.GUARANTEED)


class Stopped:
    """Stands in for kopf's DaemonStopped flag."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()


async def test_cycles_run_while_held_and_stop_when_released() -> None:
    ran: list[int] = []

    async def cycle() -> None:
        ran.append(1)

    runner = CycleRunner(cycle, debounce_s=0.0, resync_s=0.05)
    stopped = Stopped()
    holder = asyncio.create_task(runner.hold(stopped))
    await asyncio.sleep(0.2)
    assert ran and runner.holders == 1  # the first poke plus resyncs
    stopped.event.set()
    await holder
    count = len(ran)
    await asyncio.sleep(0.2)
    assert runner.holders == 0 and len(ran) <= count + 1  # no more cycles once nobody holds the loop


async def test_assumptions_end_when_confirmed_or_a_ttl_after_their_actions_finished() -> None:
    """The TTL counts from the end of a job's API actions: a create that waited in the request queue for
    longer than the TTL must keep its assumption until the watch can show the pod (the 5,000-job bench
    booked lanes twice when it was counted from the decision)."""
    now = [1000.0]
    rt = Runtime(OperatorSettings(), FakeKubeApi(), OperatorMetrics(), clock=lambda: now[0])
    b = JobId("ns/b")
    rt.cache.assume(A.job, A)
    rt.cache.assume(b, A)
    rt.expire_assumptions({A.job})
    assert set(rt.cache.assumed) == {b}
    release = asyncio.Event()
    rt.spawn({b}, release.wait())  # b's pod create is queued behind other requests
    await asyncio.sleep(0)
    now[0] += ASSUMED_TTL_S + 30
    rt.expire_assumptions(set())
    assert set(rt.cache.assumed) == {b}  # never while in flight
    release.set()
    await rt.drain()
    assert b not in rt.background.inflight
    rt.expire_assumptions(set())
    assert set(rt.cache.assumed) == {b}  # the create just finished: the watch has not had its chance yet
    now[0] += ASSUMED_TTL_S - 1
    rt.expire_assumptions(set())
    assert set(rt.cache.assumed) == {b}
    now[0] += 2
    rt.expire_assumptions(set())
    assert rt.cache.assumed == {}  # never confirmed a TTL after its actions finished: forgotten


async def test_the_pause_between_cycles_is_at_least_the_last_cycles_length() -> None:
    """Cycles get at most half of the event loop: under a stream of pokes, a slow cycle is followed by
    a pause as long as it took (the debounce alone would let cycles starve the watch events)."""
    loop = asyncio.get_running_loop()
    spans: list[tuple[float, float]] = []

    async def slow_cycle() -> None:
        began = loop.time()
        end = began + 0.15
        while loop.time() < end:  # busy, as a large cycle is: no await would let pokes through sooner
            pass
        spans.append((began, loop.time()))

    runner = CycleRunner(slow_cycle, debounce_s=0.0, resync_s=10.0)
    stopped = Stopped()
    holder = asyncio.create_task(runner.hold(stopped))
    for _ in range(30):
        runner.poke()
        await asyncio.sleep(0.02)
    stopped.event.set()
    await holder
    await runner.stop()
    assert len(spans) >= 2
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert min(gaps) >= 0.14, gaps
