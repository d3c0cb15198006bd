"""Standalone mode: without an agent the client warns once and the training loop still runs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from gpulane_client import Lane, StandaloneWarning


def test_missing_environment_runs_standalone_and_warns_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lane = Lane.from_env({})
        seen = []
        for batch in lane.iterate(range(5)):
            seen.append(batch)
        with lane.turn() as turn:
            assert turn.standalone and turn.deadline_s == math.inf and not turn.revoked
        lane.close()
    assert seen == [0, 1, 2, 3, 4]
    assert lane.standalone
    standalone = [w for w in caught if issubclass(w.category, StandaloneWarning)]
    assert len(standalone) == 1
    assert "GPULANE_COORDINATOR_SOCKET, GPULANE_LANE_ID, GPULANE_JOB not set" in str(standalone[0].message)


def test_missing_socket_runs_standalone(tmp_path: Path) -> None:
    env = {"GPULANE_COORDINATOR_SOCKET": str(tmp_path / "nope.sock"), "GPULANE_LANE_ID": "g/l", "GPULANE_JOB": "ns/j"}
    with pytest.warns(StandaloneWarning, match="does not exist"):
        lane = Lane.from_env(env)
    assert lane.standalone
    assert list(lane.iterate("ab")) == ["a", "b"]


def test_socket_nobody_serves_runs_standalone(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    stale.write_text("")  # exists, but connecting is refused
    env = {"GPULANE_COORDINATOR_SOCKET": str(stale), "GPULANE_LANE_ID": "g/l", "GPULANE_JOB": "ns/j"}
    with pytest.warns(StandaloneWarning, match="cannot connect"):
        lane = Lane.from_env(env)
    assert lane.standalone


def test_hooks_and_transfer_notes_are_harmless_standalone() -> None:
    with pytest.warns(StandaloneWarning):
        lane = Lane.from_env({})
    calls: list[object] = []
    lane.on_prefetch(calls.append)
    lane.on_evict(calls.append)
    lane.note_transfer(0.5)
    with lane.turn():
        pass
    assert calls == []
