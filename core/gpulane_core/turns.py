"""The turn discipline of one lane: who runs the next iteration, and who should prefetch for it.

One set of rules for the simulator (``gpulane_sim.engine``) and the node coordinator
(``gpulane_agent.coordinator.machine``): both keep a :class:`TurnState` per lane and ask
:func:`next_turn` at every iteration boundary and :func:`expected_next` while an iteration runs, so a
simulated lane takes turns exactly as a node's lane does.

A lane runs one iteration at a time (Salus: a job's ephemeral memory exists only while its iteration
runs, so switching jobs between iterations costs nothing but the switch). At each boundary the
discipline picks among the jobs *asking* for a turn:

* ``strict``: the first asking job in the policy's order, recomputed at every boundary. The holder
  is preempted at an iteration boundary as soon as another job ranks first (Salus ``preempt`` for
  SRTF; ``fifo`` keeps the earliest job, ``fair`` rotates as attained time grows). The preempted job
  stays a lane member: its persistent memory stays resident, only its next iteration waits.
* ``rounds``: every member gets one turn per round (seed 000's window). The next round's order is
  computed at the grant that serves the last job of the current one, so its first job can prefetch
  during that turn. A member that is not asking is skipped; when nobody left in the round asks, a
  fresh round starts at once (work-conserving).
* ``run-to-completion``: the last holder keeps the lane while it asks; otherwise the policy's first
  asking job (non-preemptive shortest-job-first when the order is SRTF's).

The prefetch target is the *runner-up*: the job :func:`next_turn` would pick if the holder stopped
asking, so the same rule, evaluated ahead of time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from gpulane_core.model import JobId

# The policy's order of some lane members (best first); callers bind the statistics it reads.
OrderOf = Callable[[Sequence[JobId]], Sequence[JobId]]


class Discipline(enum.Enum):
    STRICT = "strict"
    ROUNDS = "rounds"
    RUN_TO_COMPLETION = "run-to-completion"


@dataclass(frozen=True, slots=True)
class TurnState:
    """Per lane: the jobs still owed a turn in this round, and who held the lane last."""

    round: tuple[JobId, ...] = ()
    last: JobId | None = None

    def without(self, job: JobId) -> TurnState:
        """The state after ``job`` left the lane."""
        return TurnState(tuple(j for j in self.round if j != job), None if self.last == job else self.last)


def next_turn(
    discipline: Discipline,
    state: TurnState,
    members: Sequence[JobId],
    asking: Collection[JobId],
    order_of: OrderOf,
) -> tuple[JobId | None, TurnState]:
    """The job granted the next iteration (None: nobody asks) and the lane's state after the grant.

    ``members`` are all jobs of the lane (in join order), ``asking`` those that want a turn now.
    """
    if not asking:
        return None, state
    if discipline is Discipline.ROUNDS:
        live = set(members)
        owed = [j for j in state.round if j in live]
        candidates = [j for j in owed if j in asking]
        if not candidates:  # nobody left in this round asks: the next round starts
            owed = list(order_of(members))
            candidates = [j for j in owed if j in asking]
        pick = candidates[0]
        owed.remove(pick)
        if not owed:  # the round is served: fix the next one now, so its first job can prefetch
            owed = list(order_of(members))
        return pick, TurnState(tuple(owed), pick)
    if discipline is Discipline.RUN_TO_COMPLETION and state.last is not None and state.last in asking:
        return state.last, state
    # Everyone asking (a simulated lane, every turn) needs no membership test per member.
    askers = list(members) if asking is members else [j for j in members if j in asking]
    pick = askers[0] if len(askers) == 1 else order_of(askers)[0]
    return pick, state if state.last == pick else TurnState(state.round, pick)


def prefetch_target(
    discipline: Discipline,
    state: TurnState,
    members: Sequence[JobId],
    holder: JobId,
    asking: Collection[JobId],
    order_of: OrderOf,
) -> JobId | None:
    """The job to prefetch while ``holder`` runs: the runner-up, i.e. whom :func:`next_turn` picks
    once the holder stops asking (``asking``: the other jobs that will want a turn by then).

    Prefetching the runner-up even while the holder keeps the lane (``fifo``, a preempting ``srtf``
    job) makes the switch ready whenever it comes: a member's persistent memory is reserved in the
    lane anyway, so the early copy costs copy-engine time, never lane memory.
    """
    others = [j for j in asking if j != holder]
    if not others:
        return None  # next_turn's own answer when nobody asks (a lane of one, every turn)
    return next_turn(discipline, state, members, others, order_of)[0]
