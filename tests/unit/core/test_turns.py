"""The lane turn discipline shared by the simulator and the coordinator."""

from __future__ import annotations

from collections.abc import Sequence

from gpulane_core.model import JobId
from gpulane_core.turns import Discipline, TurnState, next_turn, prefetch_target

A, B, C = JobId("a"), JobId("b"), JobId("c")


def by_name(jobs: Sequence[JobId]) -> list[JobId]:
    return sorted(jobs)


def reverse(jobs: Sequence[JobId]) -> list[JobId]:
    return sorted(jobs, reverse=True)


def test_nobody_asking_grants_nothing_and_keeps_the_state() -> None:
    state = TurnState((B,), A)
    assert next_turn(Discipline.STRICT, state, [A, B], [], by_name) == (None, state)


def test_strict_gives_the_turn_to_the_first_asker_of_a_fresh_order() -> None:
    pick, state = next_turn(Discipline.STRICT, TurnState(), [A, B, C], [B, C], by_name)
    assert (pick, state.last) == (B, B)
    # The order is recomputed at every boundary: a new first job preempts the last holder.
    assert next_turn(Discipline.STRICT, state, [A, B, C], [B, C], reverse)[0] == C


def test_run_to_completion_keeps_the_holder_while_it_asks() -> None:
    state = TurnState((), C)
    assert next_turn(Discipline.RUN_TO_COMPLETION, state, [A, B, C], [A, C], by_name)[0] == C
    assert next_turn(Discipline.RUN_TO_COMPLETION, state, [A, B, C], [A, B], by_name)[0] == A


def test_rounds_serve_everyone_once_and_fix_the_next_round_at_its_last_grant() -> None:
    state = TurnState()
    picks = []
    for _ in range(3):
        pick, state = next_turn(Discipline.ROUNDS, state, [A, B, C], [A, B, C], reverse)
        picks.append(pick)
    assert picks == [C, B, A]
    assert state.round == (C, B, A)  # computed at a's grant, so c can prefetch during a's turn


def test_rounds_skip_a_member_that_does_not_ask_and_start_afresh_when_nobody_left_asks() -> None:
    pick, state = next_turn(Discipline.ROUNDS, TurnState((A, B)), [A, B, C], [B], by_name)
    assert (pick, state.round) == (B, (A,))
    pick, state = next_turn(Discipline.ROUNDS, state, [A, B, C], [C], by_name)
    assert (pick, state.round) == (C, (A, B))


def test_prefetch_target_is_the_runner_up_even_while_the_holder_keeps_the_lane() -> None:
    state = TurnState((), A)
    assert prefetch_target(Discipline.RUN_TO_COMPLETION, state, [A, B, C], A, [B, C], reverse) == C
    assert prefetch_target(Discipline.STRICT, state, [A, B, C], A, [A, B], by_name) == B
    assert prefetch_target(Discipline.STRICT, state, [A], A, [A], by_name) is None


def test_leaving_forgets_the_job_in_the_round_and_as_last_holder() -> None:
    assert TurnState((A, B), A).without(A) == TurnState((B,), None)
