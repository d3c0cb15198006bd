"""A peered replica says what it waits for: the reason (pure) and the watch that logs it."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import pytest
from gpulane_operator import peerwatch
from gpulane_operator.peering import PeeringTarget, operator_identity, parse_peers, targets, waiting_for
from opfakes import FakeKubeApi

NOW = 1_800_000_000.0
ME = PeeringTarget("gpulane", None, "gpulane-operator-abc", 0)


def entry(priority: int, seen_ago_s: float, lifetime: int = 60) -> dict[str, Any]:
    lastseen = datetime.datetime.fromtimestamp(NOW - seen_ago_s, datetime.UTC).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen}


def peering(**peers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "gpulane"}, "status": dict(peers)}


def test_a_missing_peering_object_is_named_with_the_apiserver_answer_and_the_ways_out() -> None:
    w = waiting_for(ME, None, 'clusterkopfpeerings.kopf.dev "gpulane" not found', NOW)
    assert w is not None and not w.expected
    assert "ClusterKopfPeering 'gpulane'" in w.message and '"gpulane" not found' in w.message
    assert "--standalone" in w.message


def test_alone_or_with_only_dead_peers_nothing_blocks() -> None:
    assert waiting_for(ME, peering(), None, NOW) is None
    assert waiting_for(ME, peering(**{ME.identity: entry(0, 1)}), None, NOW) is None
    assert waiting_for(ME, peering(old=entry(0, 61)), None, NOW) is None  # lastseen + lifetime has passed


def test_a_live_peer_of_higher_priority_makes_this_replica_a_standby() -> None:
    w = waiting_for(ME, peering(**{"gpulane-operator-1": entry(1, 10), ME.identity: entry(0, 1)}), None, NOW)
    assert w is not None and w.expected
    assert "'gpulane-operator-1' (priority 1) is active" in w.message and "expires in 50s" in w.message


def test_a_live_peer_of_equal_priority_pauses_both_until_it_expires() -> None:
    w = waiting_for(ME, peering(**{"gpulane-operator-old": entry(0, 45)}), None, NOW)
    assert w is not None and not w.expected
    assert "'gpulane-operator-old' share this replica's priority 0" in w.message and "expires in 15s" in w.message
    later = waiting_for(ME, peering(**{"gpulane-operator-old": entry(0, 50)}), None, NOW)
    assert later is not None and later.key == w.key  # the same cause: logged once, not every check


def test_unreadable_entries_are_skipped_and_namespaced_targets_follow_the_watched_namespaces() -> None:
    assert parse_peers(peering(bad={"lastseen": "yesterday"}, worse="x")) == []
    assert [t.describe() for t in targets("gpulane", ("a", "b"), "me", 0)] == [
        "KopfPeering 'gpulane' in namespace 'a'",
        "KopfPeering 'gpulane' in namespace 'b'",
    ]
    assert operator_identity({"POD_ID": "gpulane-operator-xyz"}) == "gpulane-operator-xyz"
    assert "@" in operator_identity({})


async def test_the_watch_logs_a_missing_object_within_seconds_and_once_more_when_it_appears(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(peerwatch, "FIRST_CHECK_S", 0.0)
    monkeypatch.setattr(peerwatch, "CHECK_EVERY_S", 0.01)
    api = FakeKubeApi()
    clock = [NOW]

    def now() -> float:
        clock[0] += 1.0  # 1 s per check: the 30 s repeat comes after 30 checks
        return clock[0]

    caplog.set_level(logging.INFO, logger="gpulane_operator.peerwatch")
    task = asyncio.create_task(peerwatch.watch(api, [ME], now))
    await asyncio.sleep(0.1)
    missing = [r for r in caplog.records if "to exist" in r.getMessage()]
    assert missing and missing[0].levelno == logging.WARNING
    assert len(missing) == 1  # about 10 checks so far: not repeated before REPEAT_EVERY_S
    api.peerings[("gpulane", None)] = peering()
    await asyncio.sleep(0.1)
    task.cancel()
    assert any("nothing blocks this replica" in r.getMessage() for r in caplog.records)
