"""Safety under watch lag: whatever subset of created pods the watch has delivered, and however stale
the job statuses are, the pods that really exist never break the lane invariant on any GPU."""

from __future__ import annotations

import asyncio
from typing import Any

from gpulane_core.lanes import check_invariant
from gpulane_operator import cycle
from gpulane_operator.assignment import parse_pod
from gpulane_operator.crd import parse_job
from gpulane_operator.inventory import merge, parse_node
from gpulane_operator.metrics import OperatorMetrics
from gpulane_operator.runtime import Runtime
from gpulane_operator.settings import OperatorSettings
from gpulane_operator.snapshot import build
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opfakes import FakeKubeApi, job_body, node_body

INVENTORY = merge({}, {n: parse_node(node_body(n, 2)) for n in ("n1", "n2")})
SIZES = st.tuples(st.sampled_from(["1Gi", "3Gi", "6Gi"]), st.sampled_from(["4Gi", "6Gi", "9Gi"]))
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("cycle"), st.integers(0, 0)),
        st.tuples(st.just("see"), st.integers(0, 11)),  # the watch delivers one pod
        st.tuples(st.just("finish"), st.integers(0, 11)),  # a delivered pod ends
        st.tuples(st.just("statuses"), st.integers(0, 0)),  # the job watch catches up
    ),
    min_size=1,
    max_size=40,
)


def truth_is_sound(api: FakeKubeApi) -> list[str]:
    pods = [p for p in (parse_pod(b) for b in api.pods.values()) if p is not None and p.holds_memory]
    snap = build(INVENTORY, [p.assignment for p in pods if p.assignment is not None])
    return [problem for view in snap.state.nodes.values() for lanes in view.lanes.values() for problem in check_invariant(lanes)]


async def scenario(sizes: list[tuple[str, str]], actions: list[tuple[str, int]]) -> None:
    api = FakeKubeApi()
    rt = Runtime(OperatorSettings(), api, OperatorMetrics(), clock=lambda: 1767225601.0)
    bodies = [job_body(f"j{i}", p, e) for i, (p, e) in enumerate(sizes)]
    visible: set[tuple[str, str]] = set()
    statuses: dict[str, dict[str, Any]] = {}
    for action, k in actions:
        if action == "cycle":
            jobs = {r.id: r for r in (parse_job({**b, "status": statuses.get(b["metadata"]["name"], {})}) for b in bodies)}
            pods = {p.job: p for key, body in api.pods.items() if key in visible and (p := parse_pod(body)) is not None}
            await cycle.run(rt, lambda jobs=jobs, pods=pods: cycle.Views(jobs, pods, INVENTORY, frozenset({"n1", "n2"})))
            await rt.drain()
        elif action == "see":
            keys = sorted(api.pods)
            if keys:
                key = keys[k % len(keys)]
                visible.add(key)
                rt.cache.assumed.pop(f"{key[0]}/{key[1].removesuffix('-gpulane')}", None)  # what pod_changed does
        elif action == "finish":
            keys = sorted(visible & set(api.pods))
            if keys:
                api.pods[keys[k % len(keys)]]["status"] = {"phase": "Succeeded"}
        else:
            for _, name, patch in api.patches:
                statuses[name] = {**statuses.get(name, {}), **patch["status"]}
        assert truth_is_sound(api) == [], (action, k)
    names = [p["metadata"]["name"] for p in api.pods.values()]
    assert len(names) == len(set(names))


@settings(max_examples=80, deadline=None)
@given(st.lists(SIZES, min_size=6, max_size=12), ACTIONS)
@example([("6Gi", "9Gi")] * 12, [("cycle", 0), ("cycle", 0)])  # the second cycle sees no pod yet
def test_lagging_watches_never_overcommit_a_gpu(sizes: list[tuple[str, str]], actions: list[tuple[str, int]]) -> None:
    asyncio.run(scenario(sizes, actions))
