"""The coordinator's decisions as a pure state machine: who holds each lane, who prefetches, who times out.

Inputs are parsed messages, connection events and the current time (``now``, seconds on a monotonic
clock); outputs are :class:`Send` / :class:`Close` effects for the socket server to apply. Nothing here
performs I/O or reads a clock, so every rule is unit-tested by feeding events and reading effects.

Per lane: one holder at a time. Who gets the next turn, and who is told to prefetch for it, are the
rules of :mod:`gpulane_core.turns` (the simulator runs the same ones) over the policy's order
(``gpulane_core.ordering.order``) of per-job :class:`TurnStats` kept in a sliding window. As soon as
the holder is known, the job expected next is told to prefetch, so its transfer overlaps the holder's
compute (seed 000, PipeSwitch).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gpulane_core.model import JobId, LaneId
from gpulane_core.ordering import TurnStats, after_turn, order
from gpulane_core.turns import OrderOf, TurnState, next_turn, prefetch_target

from gpulane_agent.coordinator.lane import ConnId, LaneState, Member, TurnRecord
from gpulane_agent.coordinator.metrics import LaneMetrics, LaneMetricsSnapshot
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

# How many revoked turn ids a job's late ``turn_done`` may still refer to without an error.
REVOKED_MEMORY = 16


@dataclass(frozen=True, slots=True)
class Send:
    conn: ConnId
    message: ServerMessage


@dataclass(frozen=True, slots=True)
class Close:
    conn: ConnId
    reason: str


Effect = Send | Close


@dataclass(frozen=True, slots=True)
class LaneView:
    """A read-only picture of one lane (for tests, logs and debugging)."""

    lane: LaneId
    members: tuple[JobId, ...]
    holder: JobId | None
    turn_id: int | None
    waiting: tuple[JobId, ...]
    round: tuple[JobId, ...]
    stats: tuple[TurnStats, ...]


@dataclass(slots=True)
class Coordinator:
    """All lanes of one node. Mutable instance state only; time always comes in as ``now``."""

    settings: TurnSettings = field(default_factory=TurnSettings)
    _lanes: dict[LaneId, LaneState] = field(default_factory=dict)
    _metrics: dict[LaneId, LaneMetrics] = field(default_factory=dict)
    _bound: dict[ConnId, tuple[LaneId, JobId]] = field(default_factory=dict)
    _closed_at: dict[LaneId, float] = field(default_factory=dict)  # lanes whose metrics are still exported
    _next_turn: int = 1

    # ---- inputs -------------------------------------------------------------------------------

    def handle(self, conn: ConnId, message: ClientMessage, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(message, Hello):
            self._hello(conn, message, now, effects)
            return effects
        bound = self._bound.get(conn)
        if bound is None:
            return [Send(conn, Error("type", f"{message.TYPE!r} before 'hello': join a lane first"))]
        lane = self._lanes[bound[0]]
        member = lane.members[bound[1]]
        if isinstance(message, RequestTurn):
            if lane.holder is not None and lane.holder.job == member.job:
                effects.append(Send(conn, Error("type", f"job already holds turn {lane.holder.turn_id}")))
            elif member.waiting_since is None:
                member.waiting_since = now
        elif isinstance(message, TurnDone):
            self._turn_done(lane, member, message, now, effects)
        elif isinstance(message, Withdraw):
            given_back: int | None = None
            if lane.holder is not None and lane.holder.job == member.job:
                given_back = lane.holder.turn_id
                self._end_turn(lane, member, TurnRecord(now, 0.0, 0.0, now - lane.holder.granted_s), now)
            member.waiting_since = None
            effects.append(Send(conn, Withdrawn(given_back)))
        elif isinstance(message, Leave):
            self._remove(lane, member, now)
        self._schedule(lane, now, effects)
        return effects

    def disconnect(self, conn: ConnId, now: float) -> list[Effect]:
        """The connection closed (leave or crash): the job leaves its lane, its turn passes on."""
        bound = self._bound.get(conn)
        if bound is None:
            return []
        lane = self._lanes[bound[0]]
        self._remove(lane, lane.members[bound[1]], now)
        effects: list[Effect] = []
        self._schedule(lane, now, effects)
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Revoke every turn whose deadline has passed; evict repeat offenders; forget old closed lanes."""
        effects: list[Effect] = []
        for lane_id, closed in list(self._closed_at.items()):
            if now - closed >= self.settings.closed_lane_metrics_s:
                del self._closed_at[lane_id], self._metrics[lane_id]
        for lane in list(self._lanes.values()):
            turn = lane.holder
            if turn is None or now < turn.deadline_s:
                continue
            member = lane.members[turn.job]
            member.missed += 1
            self._metrics[lane.id].timeouts += 1
            self._metrics[lane.id].hold.observe(now - turn.granted_s)
            lane.holder = None
            effects.append(Send(member.conn, TurnRevoked(turn.turn_id, member.missed, self.settings.max_missed_deadlines)))
            member.revoked.add(turn.turn_id)
            if len(member.revoked) > REVOKED_MEMORY:  # a client that never reports them must not grow this
                member.revoked.discard(min(member.revoked))
            if member.missed >= self.settings.max_missed_deadlines:
                reason = f"missed {member.missed} consecutive turn deadlines (limit {self.settings.max_missed_deadlines})"
                effects += [Send(member.conn, Evicted(reason)), Close(member.conn, reason)]
                self._remove(lane, member, now)
            self._schedule(lane, now, effects)
        return effects

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work: a turn deadline, or a closed lane's metrics expiring."""
        deadlines = [lane.holder.deadline_s for lane in self._lanes.values() if lane.holder is not None]
        deadlines += [closed + self.settings.closed_lane_metrics_s for closed in self._closed_at.values()]
        return min(deadlines, default=None)

    # ---- views --------------------------------------------------------------------------------

    def metrics(self) -> tuple[LaneMetricsSnapshot, ...]:
        return tuple(
            m.snapshot(self._lanes[lane].waiter_count() if lane in self._lanes else 0)
            for lane, m in sorted(self._metrics.items())
        )

    def view(self, lane_id: LaneId, now: float) -> LaneView | None:
        lane = self._lanes.get(lane_id)
        if lane is None:
            return None
        return LaneView(
            lane.id,
            tuple(lane.members),
            lane.holder.job if lane.holder else None,
            lane.holder.turn_id if lane.holder else None,
            tuple(m.job for m in lane.waiters()),
            tuple(lane.turns.round),
            tuple(self._stats(lane, lane.members.values(), now)),
        )

    # ---- rules --------------------------------------------------------------------------------

    def _hello(self, conn: ConnId, hello: Hello, now: float, effects: list[Effect]) -> None:
        if conn in self._bound:
            lane_id, job = self._bound[conn]
            effects.append(Send(conn, Error("type", f"this connection already joined lane {lane_id!r} as {job!r}")))
            return
        lane = self._lanes.get(hello.lane)
        if lane is not None and hello.job in lane.members:
            effects.append(Send(conn, Error("job", f"job {hello.job!r} already joined lane {hello.lane!r} on another connection")))
            return
        if lane is None:
            lane = self._lanes[hello.lane] = LaneState(hello.lane)
        self._closed_at.pop(hello.lane, None)
        self._metrics.setdefault(hello.lane, LaneMetrics(hello.lane))
        lane.members[hello.job] = Member(
            job=hello.job,
            conn=conn,
            joined_s=now,
            priority=hello.priority,
            remaining_estimate_s=hello.remaining_s,
            working_set_bytes=hello.working_set_bytes,
            iteration_estimate_s=hello.iteration_estimate_s,
            window=deque(),
        )
        self._bound[conn] = (hello.lane, hello.job)
        t = self.settings
        effects.append(
            Send(conn, Welcome(hello.lane, hello.job, t.policy.value, t.turn_timeout_s, t.max_missed_deadlines))
        )
        self._schedule(lane, now, effects)

    def _turn_done(self, lane: LaneState, member: Member, done: TurnDone, now: float, effects: list[Effect]) -> None:
        turn = lane.holder
        if turn is not None and turn.job == member.job and turn.turn_id == done.turn_id:
            hold = now - turn.granted_s
            self._end_turn(lane, member, TurnRecord(now, done.compute_s, done.transfer_s, hold), now)
            member.missed = 0
        elif done.turn_id in member.revoked:
            # It was already told the turn was revoked; its late report carries no trustworthy stats.
            member.revoked.discard(done.turn_id)
        else:
            held = f"holds turn {turn.turn_id}" if turn is not None and turn.job == member.job else "holds no turn"
            effects.append(Send(member.conn, Error("turn_id", f"turn {done.turn_id} is not this job's turn (it {held})")))
            return
        if done.again and member.waiting_since is None:
            member.waiting_since = now

    def _end_turn(self, lane: LaneState, member: Member, record: TurnRecord, now: float) -> None:
        self._metrics[lane.id].hold.observe(record.hold_s)
        member.record(record, self.settings)
        lane.holder = None

    def _remove(self, lane: LaneState, member: Member, now: float) -> None:
        if lane.holder is not None and lane.holder.job == member.job:
            self._metrics[lane.id].hold.observe(now - lane.holder.granted_s)
            lane.holder = None
        lane.forget(member.job)
        self._bound.pop(member.conn, None)
        if not lane.members:
            del self._lanes[lane.id]
            self._closed_at[lane.id] = now

    def _schedule(self, lane: LaneState, now: float, effects: list[Effect]) -> None:
        if lane.id not in self._lanes:
            return
        if lane.holder is None:
            asking = [m.job for m in lane.waiters()]
            pick, after = next_turn(self.settings.discipline, lane.turns, list(lane.members), asking, self._order_of(lane, now))
            if pick is not None:
                self._grant(lane, lane.members[pick], after, now, effects)
        self._signal_prefetch(lane, now, effects)

    def _order_of(self, lane: LaneState, now: float, projected: bool = False) -> OrderOf:
        """The policy's order on the members' statistics now; ``projected``: as they will read when
        the holder's turn ends (it will have computed about one typical iteration more)."""
        turn = lane.holder if projected else None
        expected = 0.0
        if turn is not None:
            # The holder's typical iteration; a job with no history yet is assumed to be like the
            # slowest member of its lane (lane peers usually run similar iterations).
            typical = lane.members[turn.job].typical_iteration_s()
            if typical <= 0:
                typical = max(m.typical_iteration_s() for m in lane.members.values())
            expected = max(typical, now - turn.granted_s)

        def order_of(jobs: Sequence[JobId]) -> list[JobId]:
            stats = self._stats(lane, [lane.members[j] for j in jobs], now)
            if turn is not None:
                stats = [after_turn(s, expected) if s.job == turn.job else s for s in stats]
            return order(self.settings.policy, stats)

        return order_of

    def _signal_prefetch(self, lane: LaneState, now: float, effects: list[Effect]) -> None:
        """Tell the runner-up (the next-turn rule once the holder stops asking) to prefetch."""
        if lane.holder is None:
            return
        holder = lane.holder.job
        asking = [m.job for m in lane.waiters()]
        target = prefetch_target(
            self.settings.discipline, lane.turns, list(lane.members), holder, asking, self._order_of(lane, now, projected=True)
        )
        if target is None or target == lane.prefetch_target:
            return
        lane.prefetch_target = target
        self._metrics[lane.id].prefetch_signals += 1
        effects.append(Send(lane.members[target].conn, Prefetch(lane.holder.turn_id)))

    def _grant(self, lane: LaneState, member: Member, after: TurnState, now: float, effects: list[Effect]) -> None:
        assert member.waiting_since is not None
        turn_id = self._next_turn
        self._next_turn += 1
        wait = now - member.waiting_since
        member.waiting_since = None
        timeout = max(self.settings.turn_timeout_s, self.settings.timeout_factor * member.typical_iteration_s())
        prefetched = lane.prefetch_target == member.job
        lane.prefetch_target = None
        previous = lane.grant(member.job, turn_id, now, now + timeout, after)
        metrics = self._metrics[lane.id]
        metrics.turns += 1
        metrics.wait.observe(wait)
        effects.append(Send(member.conn, TurnGranted(turn_id, timeout, wait, prefetched)))
        if self.settings.offload_on_switch and previous is not None and previous != member.job and previous in lane.members:
            effects.append(Send(lane.members[previous].conn, Offload(turn_id)))

    def _stats(self, lane: LaneState, members: Iterable[Member], now: float) -> list[TurnStats]:
        return [m.stats(now, self.settings) for m in members]
