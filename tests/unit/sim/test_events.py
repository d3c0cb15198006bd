"""The event queue: preloaded events pop in the order pushing them first would give."""

from __future__ import annotations

import pytest
from gpulane_core.model import JobId
from gpulane_sim.events import Event, EventKind, EventQueue
from hypothesis import given, settings
from hypothesis import strategies as st

_kinds = st.sampled_from(list(EventKind))
# Few distinct times, so that ties on (time, kind) between preloaded and pushed events are common.
_event = st.tuples(st.integers(0, 4), _kinds)


def _drain(queue: EventQueue) -> list[tuple[float, JobId | None]]:
    out = []
    while queue:
        time_s, event = queue.pop()
        out.append((time_s, event.job))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(_event, max_size=30), st.lists(st.lists(_event, max_size=4), max_size=30))
def test_preload_pops_as_if_pushed_first(
    preloaded: list[tuple[int, EventKind]], pushed_per_pop: list[list[tuple[int, EventKind]]]
) -> None:
    # Both queues get the same pushes after each pop (never into the past): the pop orders must match.
    reference, queue = EventQueue(), EventQueue()
    first = [(float(t), Event(kind, job=JobId(f"p{i}"))) for i, (t, kind) in enumerate(preloaded)]
    for time_s, event in first:
        reference.push(time_s, event)
    queue.preload(first)
    for step, pushes in enumerate(pushed_per_pop):
        if not reference:
            break
        (t_ref, e_ref), (t_new, e_new) = reference.pop(), queue.pop()
        assert (t_new, e_new.job) == (t_ref, e_ref.job)
        for k, (dt, kind) in enumerate(pushes):
            event = Event(kind, job=JobId(f"s{step}-{k}"))
            reference.push(t_ref + dt, event)
            queue.push(t_ref + dt, event)
    assert len(reference) == len(queue)
    assert _drain(reference) == _drain(queue)


def test_preload_only_into_an_empty_queue() -> None:
    queue = EventQueue()
    queue.push(1.0, Event(EventKind.SCHEDULE))
    with pytest.raises(ValueError, match="empty queue"):
        queue.preload([(0.0, Event(EventKind.ARRIVAL, job=JobId("a")))])
