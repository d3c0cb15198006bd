"""The pure turn state machine: one holder, policy order, prefetch, deadlines, leaves and crashes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from gpulane_agent.coordinator.lane import ConnId
from gpulane_agent.coordinator.machine import Close, Coordinator, Effect, Send
from gpulane_agent.coordinator.protocol import (
    ClientMessage,
    Error,
    Evicted,
    Hello,
    Leave,
    Offload,
    Prefetch,
    RequestTurn,
    ServerMessage,
    TurnDone,
    TurnGranted,
    TurnRevoked,
    Welcome,
    Withdraw,
    Withdrawn,
)
from gpulane_agent.coordinator.settings import TurnSettings
from gpulane_core.model import JobId, LaneId
from gpulane_core.ordering import OrderingPolicy, order

LANE = LaneId("GPU-0/lane-0")


@dataclass
class Harness:
    """Drives a Coordinator with named jobs and a hand-advanced clock."""

    settings: TurnSettings = field(default_factory=TurnSettings)
    now: float = 100.0
    machine: Coordinator = field(init=False)
    conns: dict[str, ConnId] = field(default_factory=dict)
    inbox: list[tuple[str, ServerMessage]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.machine = Coordinator(self.settings)

    def _collect(self, effects: list[Effect]) -> list[tuple[str, ServerMessage]]:
        names = {c: n for n, c in self.conns.items()}
        out: list[tuple[str, ServerMessage]] = []
        for effect in effects:
            if isinstance(effect, Send):
                out.append((names[effect.conn], effect.message))
            else:
                assert isinstance(effect, Close)
                self.closed.append(names[effect.conn])
        self.inbox += out
        return out

    def send(self, job: str, message: ClientMessage) -> list[tuple[str, ServerMessage]]:
        conn = self.conns.setdefault(job, ConnId(len(self.conns) + 1))
        return self._collect(self.machine.handle(conn, message, self.now))

    def join(self, job: str, lane: LaneId = LANE, **kw: float) -> list[tuple[str, ServerMessage]]:
        return self.send(job, Hello(JobId(job), lane, **kw))  # type: ignore[arg-type]

    def crash(self, job: str) -> list[tuple[str, ServerMessage]]:
        return self._collect(self.machine.disconnect(self.conns[job], self.now))

    def tick(self, advance: float) -> list[tuple[str, ServerMessage]]:
        self.now += advance
        return self._collect(self.machine.tick(self.now))

    def grants(self) -> list[tuple[str, TurnGranted]]:
        return [(j, m) for j, m in self.inbox if isinstance(m, TurnGranted)]

    def holder(self) -> str | None:
        view = self.machine.view(LANE, self.now)
        return view.holder if view else None

    def finish(self, job: str, compute: float, transfer: float = 0.0, again: bool = True, hold: float | None = None) -> None:
        turn = self.machine.view(LANE, self.now)
        assert turn is not None and turn.holder == job, f"{job} does not hold the lane ({turn})"
        assert turn.turn_id is not None
        self.now += compute + transfer if hold is None else hold
        self.send(job, TurnDone(turn.turn_id, compute, transfer, again=again))


def test_hello_is_welcomed_and_first_request_is_granted_without_prefetch() -> None:
    h = Harness()
    assert h.join("a") == [("a", Welcome(LANE, JobId("a"), "weight", 10.0, 3))]
    out = h.send("a", RequestTurn())
    assert out == [("a", TurnGranted(1, 10.0, 0.0, prefetched=False))]


def test_one_holder_at_a_time_and_done_hands_over() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    for job in "abc":
        h.join(job)
        h.send(job, RequestTurn())
    assert [j for j, _ in h.grants()] == ["a"]
    h.finish("a", 1.0, again=False)
    assert [j for j, _ in h.grants()] == ["a", "b"]
    assert h.holder() == "b"


def test_next_job_is_told_to_prefetch_while_the_holder_computes() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    h.join("a")
    h.send("a", RequestTurn())
    h.join("b")
    out = h.send("b", RequestTurn())
    assert out == [("b", Prefetch(after_turn=1))]
    h.finish("a", 1.0)
    granted = h.grants()[-1]
    assert granted[0] == "b" and granted[1].prefetched
    # a asked again with its turn_done; it is next after b and is told so during b's turn.
    assert h.inbox[-1] == ("a", Prefetch(after_turn=granted[1].turn_id))


def test_previous_holder_is_told_it_may_offload_on_a_switch() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    for job in "ab":
        h.join(job)
        h.send(job, RequestTurn())
    h.finish("a", 1.0)
    offloads = [(j, m) for j, m in h.inbox if isinstance(m, Offload)]
    assert offloads == [("a", Offload(next_turn=2))]


def test_no_offload_when_disabled() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR, offload_on_switch=False))
    for job in "ab":
        h.join(job)
        h.send(job, RequestTurn())
    h.finish("a", 1.0)
    assert not [m for _, m in h.inbox if isinstance(m, Offload)]


def test_fifo_is_strict_the_earliest_job_keeps_the_lane() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FIFO))
    for job in "abc":
        h.join(job)
        h.now += 1
        h.send(job, RequestTurn())
    for _ in range(3):
        h.finish("a", 0.5, again=True)
    h.finish("a", 0.5, again=False)
    h.send("a", Leave())
    assert [j for j, _ in h.grants()] == ["a", "a", "a", "a", "b"]
    # b, the runner-up, was told to prefetch once (the prediction never changed) and then went.
    assert next((j, m) for j, m in h.inbox if isinstance(m, Prefetch)) == ("b", Prefetch(after_turn=1))
    assert h.grants()[-1][1].prefetched


def test_fair_rotates_by_attained_time() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    for job in "abc":
        h.join(job)
        h.send(job, RequestTurn())
    for _ in range(6):
        holder = h.holder()
        assert holder is not None
        h.finish(holder, 1.0)
    assert [j for j, _ in h.grants()] == ["a", "b", "c", "a", "b", "c", "a"]
    assert all(g.prefetched for _, g in h.grants()[1:])


def test_weight_rounds_follow_the_core_order_on_the_same_stats() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.WEIGHT))
    profiles = {"a": (0.2, 0.10), "b": (1.0, 0.01), "c": (0.5, 0.30), "d": (0.8, 0.05)}  # compute, transfer
    for job in profiles:
        h.join(job)
        h.send(job, RequestTurn())
    rounds_checked = 0
    pending: list[str] = []  # the round computed most recently, still to be served
    for _ in range(24):
        view = h.machine.view(LANE, h.now)
        assert view is not None and view.holder is not None
        if pending:
            assert view.holder == pending.pop(0)
        if len(view.round) == len(profiles):
            # A round was just computed (eagerly, at this grant): it is exactly the core's order on
            # the statistics the machine holds now, and the next grants follow it.
            assert list(view.round) == order("weight", view.stats)
            assert not pending
            pending = list(view.round)
            rounds_checked += 1
        h.finish(view.holder, *profiles[view.holder])
    assert rounds_checked >= 4
    grants = h.grants()
    switches = [g for (prev, _), (job, g) in itertools.pairwise(grants) if job != prev]
    assert switches and all(g.prefetched for g in switches)


def test_weight_first_round_is_the_core_order_over_every_member() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.WEIGHT))
    h.join("a", working_set_bytes=12_000_000_000)  # 1 s penalty estimate
    h.join("b", working_set_bytes=1_200_000_000)  # 0.1 s
    h.join("c", working_set_bytes=6_000_000_000)  # 0.5 s
    h.send("c", RequestTurn())  # the only job asking goes first (work-conserving)
    view = h.machine.view(LANE, h.now)
    assert view is not None and view.holder == "c"
    # No compute yet: weights are 0, ties go to the smaller penalty; c already had its turn.
    assert order("weight", view.stats) == ["b", "a", "c"]
    assert view.round == ("b", "a")
    h.send("a", RequestTurn())
    assert h.inbox[-1] == ("a", Prefetch(after_turn=1))  # b is not asking, a is the best guess


def test_hung_holder_loses_the_turn_at_the_deadline_and_the_next_is_granted() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR, turn_timeout_s=5.0))
    for job in "ab":
        h.join(job)
        h.send(job, RequestTurn())
    assert h.machine.next_deadline() == pytest.approx(h.now + 5.0)
    assert h.tick(4.9) == []
    out = h.tick(0.2)
    assert ("a", TurnRevoked(1, missed=1, max_missed=3)) in out
    assert h.holder() == "b"
    # a's late report is ignored (no error), and its `again` still queues it.
    h.send("a", TurnDone(1, 5.0, again=True))
    assert not [m for _, m in h.inbox if isinstance(m, Error)]
    view = h.machine.view(LANE, h.now)
    assert view is not None and "a" in view.waiting


def test_repeat_offender_is_evicted_after_max_missed_deadlines() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FIFO, turn_timeout_s=1.0, max_missed_deadlines=2))
    h.join("a")
    h.send("a", RequestTurn())
    h.now += 1
    h.join("b")
    h.send("b", RequestTurn())
    h.tick(1.5)  # a misses once, b goes
    h.finish("b", 0.1, again=False)
    h.send("a", RequestTurn())
    out = h.tick(1.5)  # a misses again: evicted
    assert ("a", Evicted("missed 2 consecutive turn deadlines (limit 2)")) in out
    assert h.closed == ["a"]
    view = h.machine.view(LANE, h.now)
    assert view is not None and view.members == ("b",)
    assert h.machine.metrics()[0].timeouts == 2


def test_a_completed_turn_resets_the_missed_count() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FIFO, turn_timeout_s=1.0, max_missed_deadlines=2))
    h.join("a")
    h.send("a", RequestTurn())
    h.tick(1.5)
    h.send("a", RequestTurn())
    h.finish("a", 0.1, again=True)
    h.tick(1.5)
    assert not h.closed


def test_turn_timeout_grows_with_the_job_iteration() -> None:
    h = Harness(TurnSettings(turn_timeout_s=2.0, timeout_factor=4.0))
    h.join("a", iteration_estimate_s=3.0)
    out = h.send("a", RequestTurn())
    assert out[0][1] == TurnGranted(1, 12.0, 0.0, prefetched=False)


def test_crashed_holder_passes_the_turn() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    for job in "abc":
        h.join(job)
        h.send(job, RequestTurn())
    h.crash("a")
    assert h.holder() == "b"
    view = h.machine.view(LANE, h.now)
    assert view is not None and view.members == ("b", "c")


def test_last_member_leaving_removes_the_lane_but_keeps_counters() -> None:
    h = Harness()
    h.join("a")
    h.send("a", RequestTurn())
    h.send("a", Leave())
    assert h.machine.view(LANE, h.now) is None
    (snap,) = h.machine.metrics()
    assert snap.turns == 1 and snap.waiters == 0 and snap.hold.count == 1


def test_a_closed_lanes_counters_expire_so_scrapes_do_not_grow_forever() -> None:
    h = Harness(TurnSettings(closed_lane_metrics_s=300.0))
    h.join("a")
    h.send("a", Leave())
    closed = h.now
    assert h.machine.next_deadline() == closed + 300.0  # the server's timer fires for the expiry
    h.tick(299.0)
    assert len(h.machine.metrics()) == 1  # still exported: scrapes see the last increments
    h.tick(1.0)
    assert h.machine.metrics() == () and h.machine.next_deadline() is None


def test_a_lane_reopened_before_expiry_keeps_its_counters() -> None:
    h = Harness(TurnSettings(closed_lane_metrics_s=300.0))
    h.join("a")
    h.send("a", RequestTurn())
    h.send("a", Leave())
    h.tick(10.0)
    h.join("b")
    h.tick(1000.0)
    (snap,) = h.machine.metrics()
    assert snap.turns == 1 and h.machine.next_deadline() is None


def test_withdraw_cancels_a_request_and_releases_a_fresh_grant() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    h.join("a")
    h.send("a", RequestTurn())
    h.join("b")
    h.send("b", RequestTurn())
    assert h.send("b", Withdraw()) == [("b", Withdrawn(None))]
    view = h.machine.view(LANE, h.now)
    assert view is not None and view.waiting == ()
    assert h.send("a", Withdraw()) == [("a", Withdrawn(1))]  # gives back the turn it holds
    assert h.holder() is None


def test_errors_name_the_field() -> None:
    h = Harness()
    assert h.send("a", RequestTurn()) == [("a", Error("type", "'request_turn' before 'hello': join a lane first"))]
    h.join("a")
    assert h.join("a")[0][1] == Error("type", "this connection already joined lane 'GPU-0/lane-0' as 'a'")
    h.conns["a2"] = ConnId(99)
    out = h._collect(h.machine.handle(ConnId(99), Hello(JobId("a"), LANE), h.now))
    assert out == [("a2", Error("job", "job 'a' already joined lane 'GPU-0/lane-0' on another connection"))]
    h.send("a", RequestTurn())
    assert h.send("a", RequestTurn())[0][1] == Error("type", "job already holds turn 1")
    assert h.send("a", TurnDone(42, 1.0))[0][1] == Error("turn_id", "turn 42 is not this job's turn (it holds turn 1)")


def test_lanes_are_independent() -> None:
    h = Harness()
    other = LaneId("GPU-0/lane-1")
    h.join("a")
    h.join("b", lane=other)
    h.send("a", RequestTurn())
    h.send("b", RequestTurn())
    assert [j for j, _ in h.grants()] == ["a", "b"]


def test_statistics_window_and_penalty_estimate() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR, window_s=10.0, assumed_h2d_bytes_per_s=1e9))
    h.join("a", working_set_bytes=2_000_000_000, remaining_s=100.0)
    h.send("a", RequestTurn())
    (stats,) = h.machine.view(LANE, h.now).stats  # type: ignore[union-attr]
    assert stats.penalty_s == pytest.approx(2.0)
    h.finish("a", 1.0, 0.5, hold=2.0)  # 0.5 s idle inside the turn
    h.finish("a", 3.0, 0.0)
    (stats,) = h.machine.view(LANE, h.now).stats  # type: ignore[union-attr]
    assert stats.compute_s == pytest.approx(4.0)
    assert stats.idle_s == pytest.approx(0.5)
    assert stats.penalty_s == pytest.approx(0.5)  # only reported transfers count once there are some
    assert stats.attained_s == pytest.approx(4.0)
    assert stats.remaining_s == pytest.approx(96.0)
    assert stats.iterations_done == 2
    h.now += 60  # the window slides; the last record stays so a slow job keeps statistics
    (stats,) = h.machine.view(LANE, h.now).stats  # type: ignore[union-attr]
    assert stats.compute_s == pytest.approx(3.0)
    assert stats.attained_s == pytest.approx(4.0)


def test_metrics_count_turns_waits_prefetches_and_waiters() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    for job in "abc":
        h.join(job)
        h.send(job, RequestTurn())
    h.now += 0.3
    h.finish("a", 1.0, again=False)
    (snap,) = h.machine.metrics()
    assert snap.turns == 2
    assert snap.waiters == 1
    assert snap.prefetch_signals == 2  # b during a's turn, c during b's
    assert snap.wait.count == 2 and snap.wait.total == pytest.approx(1.3)
    assert snap.hold.count == 1 and snap.hold.total == pytest.approx(1.3)


def test_window_holds_at_most_window_max_turns() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR, window_s=1e9, window_max_turns=4))
    h.join("a")
    h.send("a", RequestTurn())
    for i in range(10):
        h.finish("a", float(i + 1))
    (stats,) = h.machine.view(LANE, h.now).stats  # type: ignore[union-attr]
    assert stats.compute_s == pytest.approx(7 + 8 + 9 + 10)
    assert stats.attained_s == pytest.approx(55.0)  # attained is not windowed
    assert stats.iterations_done == 10


def test_srtf_serves_the_least_remaining_job_first_and_keeps_it() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.SRTF))
    h.join("long", remaining_s=100.0)
    h.send("long", RequestTurn())  # alone: granted at once (work-conserving)
    h.join("short", remaining_s=2.0)
    h.send("short", RequestTurn())
    h.join("mid", remaining_s=10.0)
    h.send("mid", RequestTurn())
    h.finish("long", 1.0, again=True)
    for _ in range(2):
        h.finish("short", 0.5, again=True)
    assert [j for j, _ in h.grants()] == ["long", "short", "short", "short"]


def test_priority_classes_go_first_under_any_policy() -> None:
    h = Harness(TurnSettings(policy=OrderingPolicy.FAIR))
    h.join("a")
    h.send("a", RequestTurn())
    h.join("low", priority=-1)
    h.send("low", RequestTurn())
    h.join("high", priority=5)
    h.send("high", RequestTurn())
    h.finish("a", 1.0, again=True)
    h.finish("high", 1.0, again=True)
    assert [j for j, _ in h.grants()] == ["a", "high", "high"]
