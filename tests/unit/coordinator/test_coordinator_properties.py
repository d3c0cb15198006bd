"""Property tests: under any sequence of joins, requests, finishes, withdrawals, crashes and timeouts,
a lane never has two holders, every grant answers a request, and waiting jobs are eventually served."""

from __future__ import annotations

from gpulane_agent.coordinator.lane import ConnId
from gpulane_agent.coordinator.machine import Close, Coordinator, Effect, Send
from gpulane_agent.coordinator.protocol import (
    Hello,
    Leave,
    RequestTurn,
    TurnDone,
    TurnGranted,
    TurnRevoked,
    Withdraw,
)
from gpulane_agent.coordinator.settings import TurnSettings
from gpulane_core.model import JobId, LaneId
from gpulane_core.ordering import OrderingPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

LANE = LaneId("lane")
JOBS = ["a", "b", "c", "d"]
OPS = st.lists(
    st.tuples(st.sampled_from(["join", "request", "done", "done_again", "withdraw", "leave", "crash", "tick"]), st.sampled_from(JOBS)),
    max_size=60,
)


class Model:
    """Tracks, from the effects alone, who the clients believe holds the lane."""

    def __init__(self, policy: OrderingPolicy) -> None:
        self.machine = Coordinator(TurnSettings(policy=policy, turn_timeout_s=1.0, max_missed_deadlines=2))
        self.now = 0.0
        self.joined: set[str] = set()
        self.asked: set[str] = set()
        self.holding: dict[str, int] = {}  # job -> turn id, as told by the coordinator
        self.conn = {job: ConnId(i) for i, job in enumerate(JOBS)}
        self.names = {c: j for j, c in self.conn.items()}

    def apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            job = self.names[effect.conn]
            if isinstance(effect, Close):
                self.joined.discard(job)
                self.asked.discard(job)
                self.holding.pop(job, None)
                continue
            assert isinstance(effect, Send)
            msg = effect.message
            if isinstance(msg, TurnGranted):
                assert not self.holding, f"grant to {job} while {self.holding} holds"
                assert job in self.asked, f"{job} granted without asking"
                self.asked.discard(job)
                self.holding[job] = msg.turn_id
            elif isinstance(msg, TurnRevoked):
                assert self.holding.pop(job) == msg.turn_id

    def step(self, op: str, job: str) -> None:
        conn = self.conn[job]
        self.now += 0.25
        if op == "join" and job not in self.joined:
            self.joined.add(job)
            self.apply(self.machine.handle(conn, Hello(JobId(job), LANE), self.now))
        elif job not in self.joined:
            return
        elif op == "request" and job not in self.holding:
            self.asked.add(job)
            self.apply(self.machine.handle(conn, RequestTurn(), self.now))
        elif op in ("done", "done_again") and job in self.holding:
            again = op == "done_again"
            turn = self.holding.pop(job)
            if again:
                self.asked.add(job)
            self.apply(self.machine.handle(conn, TurnDone(turn, 0.2, 0.01, again=again), self.now))
        elif op == "withdraw":
            self.asked.discard(job)
            self.holding.pop(job, None)
            self.apply(self.machine.handle(conn, Withdraw(), self.now))
        elif op in ("leave", "crash"):
            self.joined.discard(job)
            self.asked.discard(job)
            self.holding.pop(job, None)
            if op == "leave":
                self.apply(self.machine.handle(conn, Leave(), self.now))
            else:
                self.apply(self.machine.disconnect(conn, self.now))
        elif op == "tick":
            self.now += 0.9
            self.apply(self.machine.tick(self.now))


@settings(max_examples=150, deadline=None)
@given(OPS, st.sampled_from(list(OrderingPolicy)))
def test_never_two_holders_and_waiters_are_served(ops: list[tuple[str, str]], policy: OrderingPolicy) -> None:
    model = Model(policy)
    for op, job in ops:
        model.step(op, job)
        view = model.machine.view(LANE, model.now)
        if view is not None:
            assert set(view.members) == model.joined
            assert set(model.holding) == ({view.holder} if view.holder else set())
    # Liveness: finish every turn as it comes; everyone who asked gets a turn, nobody is left waiting.
    served: set[str] = set()
    for _ in range(len(JOBS) + 1):
        for job, turn in list(model.holding.items()):
            served.add(job)
            model.holding.pop(job)
            model.apply(model.machine.handle(model.conn[job], TurnDone(turn, 0.1), model.now))
    assert not model.asked, f"{model.asked} still waiting"
