"""Spilling: jobs the device-plugin limiter holds on a packed node are placed elsewhere in the same cycle."""

from __future__ import annotations

from collections import defaultdict

from gpulane_core.model import JobId, NodeName
from gpulane_core.scheduler import SchedulerConfig
from gpulane_operator.crd import JobRecord, parse_job
from gpulane_operator.decide import live_assignments, plan, prepare
from gpulane_operator.inventory import merge, parse_node
from gpulane_operator.snapshot import build
from gpulane_operator.spill import plan_cycle
from opfakes import job_body, node_body

CONFIG = SchedulerConfig()


def burst(count: int, nodes: int) -> tuple[dict[JobId, JobRecord], dict]:  # type: ignore[type-arg]
    inv = merge({}, {f"n{i}": parse_node(node_body(f"n{i}", gpus=8)) for i in range(nodes)})
    js = {r.id: r for r in (parse_job(job_body(f"j{i:03d}", "1Gi", "6Gi")) for i in range(count))}
    return js, inv


def test_a_burst_spills_past_the_limiter_and_keeps_every_rule() -> None:
    js, inv = burst(120, 20)
    prepared = prepare(js, {}, {}, inv, {})
    result, decided = plan_cycle(prepared, CONFIG, 0.0, js, {}, {})
    single = plan(prepared, result, js, {}, {})
    assert single.limited  # the packed first round leaves jobs waiting for counts ...
    assert len(decided.creates) > len(single.creates)  # ... which the spills place elsewhere
    assert len(plan_cycle(prepared, CONFIG, 0.0, js, {}, {}, rounds=3)[1].creates) >= 110  # three rounds: most
    assert len(decided.creates) == 120  # the default rounds place the whole burst
    charges: dict[NodeName, list[int]] = defaultdict(list)
    for _, a in decided.creates:
        charges[a.node].append(a.charge_units)
    for node, units in charges.items():  # every pod awaiting allocation on a node has its own count
        assert len(units) == len(set(units)), (node, units)
    created = {rec.id: a for rec, a in decided.creates}
    snapshot = build(inv, live_assignments({}, created).values())
    assert snapshot.problems == ()  # the lane invariant holds on every GPU
    assert not {u.record.id for u in decided.unschedulable} & set(created)  # no stale "waiting" status


def test_jobs_left_after_the_last_spill_keep_their_first_status() -> None:
    js, inv = burst(60, 2)  # 2 nodes: the spills run out of nodes
    prepared = prepare(js, {}, {}, inv, {})
    result, decided = plan_cycle(prepared, CONFIG, 0.0, js, {}, {})
    first = plan(prepared, result, js, {}, {})
    held = set(decided.limited)
    assert held and len(decided.creates) + len(held) <= 60
    assert {u.record.id for u in decided.unschedulable} <= {u.record.id for u in first.unschedulable}
    assert held <= {u.record.id for u in first.unschedulable}
