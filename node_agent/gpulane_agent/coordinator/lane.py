"""Per-lane and per-job records of the state machine, and the sliding-window statistics.

Kept apart from :mod:`machine` so the rules there read as rules; everything here is plain data with
small helpers. Statistics become the :class:`gpulane_core.ordering.TurnStats` every policy reads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NewType

from gpulane_core.model import JobId, LaneId
from gpulane_core.ordering import TurnStats
from gpulane_core.turns import TurnState

from gpulane_agent.coordinator.settings import TurnSettings

ConnId = NewType("ConnId", int)  # the socket server's handle for one client connection


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One finished turn as the holder reported it."""

    end_s: float
    compute_s: float
    transfer_s: float
    hold_s: float

    @property
    def idle_s(self) -> float:
        # Time the job held the lane without computing or transferring (input pipeline, host work).
        return max(0.0, self.hold_s - self.compute_s - self.transfer_s)


@dataclass(slots=True)
class Member:
    job: JobId
    conn: ConnId
    joined_s: float
    priority: int
    remaining_estimate_s: float
    working_set_bytes: int
    iteration_estimate_s: float
    window: deque[TurnRecord]
    attained_s: float = 0.0
    turns_done: int = 0
    missed: int = 0  # consecutive missed deadlines
    waiting_since: float | None = None
    revoked: set[int] = field(default_factory=set)
    # Running sums over ``window`` (stats are read on every decision; the window may hold 32 turns).
    _compute: float = 0.0
    _idle: float = 0.0
    _transfer: float = 0.0
    _transfers: int = 0

    def record(self, record: TurnRecord, settings: TurnSettings) -> None:
        self.window.append(record)
        self._add(record, 1)
        self.attained_s += record.compute_s
        self.turns_done += 1
        while len(self.window) > settings.window_max_turns:
            self._add(self.window.popleft(), -1)
        self._prune(record.end_s, settings.window_s)

    def _add(self, record: TurnRecord, sign: int) -> None:
        self._compute += sign * record.compute_s
        self._idle += sign * record.idle_s
        if record.transfer_s > 0:
            self._transfer += sign * record.transfer_s
            self._transfers += sign
        if len(self.window) == 0:  # no rounding residue survives an empty window
            self._compute = self._idle = self._transfer = 0.0

    def _prune(self, now: float, window_s: float) -> None:
        # Keep at least the last record so a job slower than the window still has statistics.
        while len(self.window) > 1 and self.window[0].end_s < now - window_s:
            self._add(self.window.popleft(), -1)

    def typical_iteration_s(self) -> float:
        observed = max((r.compute_s + r.transfer_s for r in self.window), default=0.0)
        return max(self.iteration_estimate_s, observed)

    def stats(self, now: float, settings: TurnSettings) -> TurnStats:
        self._prune(now, settings.window_s)
        if self._transfers > 0:
            penalty = max(0.0, self._transfer) / self._transfers
        else:  # nothing reported yet: the working set over an assumed host-to-device bandwidth
            penalty = self.working_set_bytes / settings.assumed_h2d_bytes_per_s
        return TurnStats(
            job=self.job,
            arrival_s=self.joined_s,
            priority=self.priority,
            attained_s=self.attained_s,
            remaining_s=max(0.0, self.remaining_estimate_s - self.attained_s),
            compute_s=max(0.0, self._compute),
            idle_s=max(0.0, self._idle),
            penalty_s=penalty,
            iterations_done=self.turns_done,
        )


@dataclass(frozen=True, slots=True)
class Turn:
    turn_id: int
    job: JobId
    granted_s: float
    deadline_s: float


@dataclass(slots=True)
class LaneState:
    id: LaneId
    members: dict[JobId, Member] = field(default_factory=dict)  # insertion order = join order
    holder: Turn | None = None
    turns: TurnState = field(default_factory=TurnState)  # the round still owed, and the last holder (gpulane_core.turns)
    prefetch_target: JobId | None = None  # who was told to prefetch for the next turn

    def waiters(self) -> list[Member]:
        return [m for m in self.members.values() if m.waiting_since is not None]

    def waiter_count(self) -> int:
        return len(self.waiters())

    def grant(self, job: JobId, turn_id: int, now: float, deadline_s: float, after: TurnState) -> JobId | None:
        """Make ``job`` the holder (``after``: the turn state :func:`next_turn` returned with it);
        returns the previous holder's job."""
        previous = self.turns.last
        self.holder = Turn(turn_id, job, now, deadline_s)
        self.turns = after
        return previous

    def forget(self, job: JobId) -> None:
        del self.members[job]
        self.turns = self.turns.without(job)
        if self.prefetch_target == job:
            self.prefetch_target = None
