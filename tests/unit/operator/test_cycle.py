"""The apply side of a cycle against an in-memory KubeApi: idempotence and crash recovery."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from typing import Any

from gpulane_core.lanes import check_invariant
from gpulane_core.model import JobId, NodeName
from gpulane_operator import cycle, lifecycle, outcomes
from gpulane_operator.assignment import parse_pod
from gpulane_operator.crd import parse_job
from gpulane_operator.inventory import merge, parse_node
from gpulane_operator.k8s.api import ApiError
from gpulane_operator.k8s.status import StatusWriter
from gpulane_operator.metrics import OperatorMetrics
from gpulane_operator.published import SliceRecord
from gpulane_operator.runtime import Runtime
from gpulane_operator.settings import OperatorSettings
from gpulane_operator.snapshot import build
from gpulane_operator.statuses import compose
from opfakes import FakeKubeApi, job_body, node_body


def runtime(api: FakeKubeApi) -> Runtime:
    return Runtime(OperatorSettings(), api, OperatorMetrics(), clock=lambda: 1767225601.0)


def views(api: FakeKubeApi, bodies: list[dict[str, Any]], statuses: dict[str, dict[str, Any]] | None = None,
          *, published: bool = True) -> cycle.Views:  # fmt: skip
    """Two nodes of 2 GPUs; ``published``: each has its agent's ResourceSlice naming its GPUs (DRA jobs need it)."""
    statuses = statuses or {}
    jobs = {r.id: r for r in (parse_job({**b, "status": statuses.get(b["metadata"]["name"], {})}) for b in bodies)}
    pods = {p.job: p for p in (parse_pod(body) for body in api.pods.values()) if p is not None}
    inventory = merge({}, {n: parse_node(node_body(n, 2)) for n in ("n1", "n2")})
    slices = {
        f"{n}-gpu.gpulane.dev": SliceRecord(f"{n}-gpu.gpulane.dev", n, frozenset(g.uuid for g in inv.node.gpus))
        for n, inv in inventory.items()
    } if published else {}  # fmt: skip
    return cycle.Views(jobs, pods, inventory, slices=slices)


async def run(rt: Runtime, v: cycle.Views) -> None:
    await cycle.run(rt, lambda: v)
    await rt.drain()  # a cycle's API actions run in the background


def applied_statuses(api: FakeKubeApi) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _, name, patch in api.patches:
        out[name] = {**out.get(name, {}), **patch["status"]}
    return out


def lanes_sound(api: FakeKubeApi, v: cycle.Views) -> None:
    pods = {p.job: p for p in (parse_pod(b) for b in api.pods.values()) if p is not None}
    snap = build(v.inventory, [p.assignment for p in pods.values() if p.assignment is not None])
    for view in snap.state.nodes.values():
        for lanes in view.lanes.values():
            assert check_invariant(lanes) == []


async def test_twenty_jobs_fit_only_by_sharing_and_each_gets_one_bound_pod(api: FakeKubeApi) -> None:
    bodies = [job_body(f"j{i}", "512Mi", "6Gi") for i in range(20)]  # 130Gi alone, 64Gi of GPUs
    rt = runtime(api)
    for _ in range(20):  # a node takes as many pods in flight as a sharer's charge has distinct counts
        before = set(api.pods)
        await run(rt, views(api, bodies, applied_statuses(api)))
        charges: dict[str, list[str]] = {}
        for key in set(api.pods) - before:
            ann = api.pods[key]["metadata"]["annotations"]
            charges.setdefault(ann["gpulane.dev/node"], []).append(ann["gpulane.dev/charge-units"])
        assert all(len(c) == len(set(c)) for c in charges.values())  # unique among the node's unallocated
        for pod in api.pods.values():
            pod["metadata"]["annotations"]["gpulane.dev/allocated"] = "true"  # the agent's Allocate
        if len(api.pods) == 20:
            break
    assert len(api.pods) == 20 and len(api.binds) == 20
    statuses = applied_statuses(api)
    assert {s["phase"] for s in statuses.values()} == {"Scheduled"}
    lanes_sound(api, views(api, bodies))
    # A cycle with stale job statuses (none written yet) only finishes, it never creates again.
    await run(rt, views(api, bodies))
    assert len(api.pods) == 20


async def test_crash_between_create_and_bind_is_finished_after_restart(api: FakeKubeApi) -> None:
    bodies = [job_body("a", "1Gi", "2Gi")]
    api.fail["bind_pod"] = ApiError(500, "etcd timeout")
    await run(runtime(api), views(api, bodies))
    (pod,) = api.pods.values()
    assert not pod["spec"].get("nodeName")
    # The job says it waits and why (so it is a waiting job, held for resyncs), nothing more.
    (status,) = (patch["status"] for _, _, patch in api.patches)
    assert status["phase"] == "Pending" and "500: etcd timeout" in status["message"]
    fresh = runtime(api)  # a restarted operator: nothing assumed, state only from the API
    await run(fresh, views(api, bodies))
    assert len(api.pods) == 1 and api.binds == [("ns", "a-gpulane", pod["metadata"]["annotations"]["gpulane.dev/node"])]
    assert applied_statuses(api)["a"]["phase"] == "Scheduled"


async def test_an_existing_pod_is_adopted_with_its_own_assignment(api: FakeKubeApi) -> None:
    bodies = [job_body("a", "1Gi", "2Gi"), job_body("b", "1Gi", "2Gi")]
    rt = runtime(api)
    await run(rt, views(api, bodies[:1]))
    placed = next(iter(api.pods.values()))
    placed["spec"]["nodeName"] = ""
    api.binds.clear()
    # The job's status write was lost and another replica's view is stale: the pod is adopted, not duplicated.
    stale = views(api, bodies)
    stale = cycle.Views(stale.jobs, {}, stale.inventory)
    await run(runtime(api), stale)
    assert len(api.pods) == 2
    assert ("ns", "a-gpulane", placed["metadata"]["annotations"]["gpulane.dev/node"]) in api.binds


async def test_a_rejected_pod_fails_the_job_and_frees_the_assumption(api: FakeKubeApi) -> None:
    api.fail["create_pod"] = ApiError(422, "spec.containers[0].image: Required value")
    rt = runtime(api)
    await run(rt, views(api, [job_body("a")]))
    status = applied_statuses(api)["a"]
    assert status["phase"] == "Failed" and "Required value" in status["message"]
    assert rt.cache.assumed == {}


async def test_lost_node_requeues_its_jobs(api: FakeKubeApi) -> None:
    bodies = [job_body("a", "1Gi", "2Gi")]
    await run(runtime(api), views(api, bodies))
    node = next(iter(api.pods.values()))["metadata"]["annotations"]["gpulane.dev/node"]
    v = views(api, bodies, {"a": {"phase": "Running"}})
    gone = cycle.Views(v.jobs, v.pods, {k: i for k, i in v.inventory.items() if k != node})
    rt = runtime(api)
    await cycle.sweep_losses(rt, gone)
    await rt.drain()  # status writes and Events are queued
    assert api.pods == {} and rt.cache.deleting[JobId("ns/a")][0].value == "NodeLost"
    assert api.deleted == [("ns", "a-gpulane", 0)]  # the Node object is gone: force, like pod GC
    assert applied_statuses(api)["a"]["phase"] == "Pending"
    assert "is gone" in applied_statuses(api)["a"]["message"]


async def test_unhealthy_gpu_on_a_live_node_deletes_gracefully(api: FakeKubeApi) -> None:
    bodies = [job_body("a", "1Gi", "2Gi")]
    await run(runtime(api), views(api, bodies))
    node = next(iter(api.pods.values()))["metadata"]["annotations"]["gpulane.dev/node"]
    v = views(api, bodies, {"a": {"phase": "Running"}})
    inv = dict(v.inventory)
    sick = inv[node].node
    inv[node] = replace(inv[node], node=replace(sick, gpus=tuple(replace(g, healthy=False) for g in sick.gpus)))
    rt = runtime(api)
    await cycle.sweep_losses(rt, cycle.Views(v.jobs, v.pods, inv, frozenset({"n1", "n2"})))
    await rt.drain()  # status writes and Events are queued
    assert api.deleted == [("ns", "a-gpulane", None)]
    assert applied_statuses(api)["a"]["conditions"][0]["reason"] == "GPULost"


async def test_a_node_not_ready_past_the_grace_is_lost_and_a_sweep_is_scheduled_before(api: FakeKubeApi) -> None:
    bodies = [job_body("a", "1Gi", "2Gi")]
    await run(runtime(api), views(api, bodies))
    node = next(iter(api.pods.values()))["metadata"]["annotations"]["gpulane.dev/node"]
    v = views(api, bodies, {"a": {"phase": "Running"}})
    now = 1767225601.0
    inv = dict(v.inventory)
    inv[node] = replace(inv[node], schedulable=False, not_ready_since=now - 5.0)
    nodes = frozenset({"n1", "n2"})
    rt = runtime(api)
    sweeps: list[str] = []

    async def sweep() -> None:
        sweeps.append("swept")

    rt.wakeups.sweep = sweep
    await cycle.sweep_losses(rt, cycle.Views(v.jobs, v.pods, inv, nodes))
    assert api.deleted == [] and set(rt.wakeups.timers) == {node}  # 5 s of 20: not yet; woken at the deadline
    assert rt.wakeups.timers[node][0] == now + 15.0
    rt.wakeups.cancel()
    inv[node] = replace(inv[node], not_ready_since=now - 21.0)
    await cycle.sweep_losses(rt, cycle.Views(v.jobs, v.pods, inv, nodes))
    await rt.drain()
    assert api.deleted == [("ns", "a-gpulane", 0)]  # its kubelet will never confirm: force
    status = applied_statuses(api)["a"]
    assert status["phase"] == "Pending" and f"node {node} has been NotReady for 21s" in status["message"]


def test_a_not_ready_node_records_since_when() -> None:
    body = node_body("n1", 2)
    body["status"]["conditions"] = [{"type": "Ready", "status": "Unknown", "lastTransitionTime": "2026-12-02T13:10:07Z"}]
    facts = parse_node(body)
    assert not facts.ready and facts.not_ready_since == 1796217007.0
    assert merge({}, {"n1": facts})[NodeName("n1")].not_ready_since == 1796217007.0
    body["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T13:10:07Z"}]
    assert parse_node(body).not_ready_since is None
    body["status"]["conditions"] = [{"type": "Ready", "status": "False"}]  # no time given: never lost by age
    assert parse_node(body).not_ready_since is None


async def test_an_assumption_dropped_while_the_cycle_awaits_still_counts_in_that_cycle(api: FakeKubeApi) -> None:
    """The pod watch confirms job a (pod_changed drops its assumption) while the cycle awaits an orphan's
    deletion. The cycle's pods were read before that, so a's pod is in neither: it must still be counted,
    or b is given a's charge units on the same node and the device plugin's Allocate cannot tell them apart."""
    one_node = merge({}, {"n1": parse_node(node_body("n1", 1))})
    a, b = job_body("a", "1Gi", "2Gi"), job_body("b", "1Gi", "2Gi")
    rt = runtime(api)
    await run(rt, cycle.Views({parse_job(a).id: parse_job(a)}, {}, one_node, frozenset({"n1"})))
    a_pod = api.pods[("ns", "a-gpulane")]
    assert JobId("ns/a") in rt.cache.assumed  # created, not yet seen by the watch
    orphan = copy.deepcopy(a_pod)
    orphan["metadata"]["name"] = "ghost-gpulane"
    orphan["metadata"]["labels"]["gpulane.dev/job"] = "ghost"
    orphan["metadata"]["annotations"]["gpulane.dev/charge-units"] = "1"
    api.pods[("ns", "ghost-gpulane")] = orphan
    real_delete = api.delete_pod

    async def delete_while_the_watch_confirms_a(namespace: str, name: str, grace_period_s: int | None = None) -> None:
        await real_delete(namespace, name, grace_period_s)
        rt.cache.assumed.pop(JobId("ns/a"), None)  # what pod_changed does when a's pod reaches the watch

    api.delete_pod = delete_while_the_watch_confirms_a  # type: ignore[method-assign]
    statuses = applied_statuses(api)
    jobs = {r.id: r for r in (parse_job({**body, "status": statuses.get(body["metadata"]["name"], {})}) for body in (a, b))}
    orphan_rec = parse_pod(orphan)
    assert orphan_rec is not None
    await run(rt, cycle.Views(jobs, {orphan_rec.job: orphan_rec}, one_node, frozenset({"n1"})))
    assert ("ns", "ghost-gpulane", None) in api.deleted
    b_pod = api.pods[("ns", "b-gpulane")]
    charge = "gpulane.dev/charge-units"
    assert b_pod["metadata"]["annotations"]["gpulane.dev/node"] == a_pod["metadata"]["annotations"]["gpulane.dev/node"]
    assert b_pod["metadata"]["annotations"][charge] != a_pod["metadata"]["annotations"][charge]


async def test_a_burst_onto_one_node_never_charges_more_units_than_its_kubelet_has(api: FakeKubeApi) -> None:
    """20 jobs of 512Mi + 1Gi fit one node of 2 x 16Gi by lanes, but 20 distinct unit counts sum to 210 of
    its 128 units: the kubelet would refuse the last pods. Only what fits is created; the rest waits,
    saying for what, and is placed once the device plugin has allocated the first pods."""
    node = merge({}, {"n1": parse_node(node_body("n1", 2, device_units=128))})
    bodies = [job_body(f"j{i:02d}", "512Mi", "1Gi") for i in range(20)]
    rt = runtime(api)

    def now_views() -> cycle.Views:
        statuses = applied_statuses(api)
        jobs = {r.id: r for r in (parse_job({**b, "status": statuses.get(b["metadata"]["name"], {})}) for b in bodies)}
        pods = {p.job: p for p in (parse_pod(body) for body in api.pods.values()) if p is not None}
        return cycle.Views(jobs, pods, node, frozenset({"n1"}))

    def charges() -> list[int]:
        return [int(p["metadata"]["annotations"]["gpulane.dev/charge-units"]) for p in api.pods.values()]

    await run(rt, now_views())
    first = len(api.pods)
    assert 0 < first < 20 and sum(charges()) <= 128 and len(set(charges())) == first
    waiting = [s for s in applied_statuses(api).values() if s.get("phase") == "Pending"]
    assert waiting and all("waiting for the device plugin on n1" in s["message"] for s in waiting), waiting
    for pod in api.pods.values():  # the agent's Allocate: the kubelet admitted them
        pod["metadata"]["annotations"]["gpulane.dev/allocated"] = "true"
    for _ in range(10):
        await run(rt, now_views())
        for pod in api.pods.values():
            pod["metadata"]["annotations"]["gpulane.dev/allocated"] = "true"
    assert len(api.pods) == 20 and sum(charges()) <= 128
    lanes_sound(api, now_views())


async def test_a_bound_jobs_scheduled_status_waits_for_running_and_both_are_one_patch(api: FakeKubeApi) -> None:
    now = [0.0]
    rt = runtime(api)
    rt.status = StatusWriter(api, rt.limit, compose, clock=lambda: now[0])
    bodies = [job_body("a", "1Gi", "2Gi")]
    await cycle.run(rt, lambda: views(api, bodies))
    await rt.background.wait()  # the pod create and the Binding, not the status writer
    assert len(api.binds) == 1
    now[0] = outcomes.SCHEDULED_WINDOW_S - 0.5  # past the writer's default window, not past Scheduled's
    await asyncio.sleep(0.05)
    assert api.patches == []
    (body,) = api.pods.values()
    body["status"] = {"phase": "Running"}  # the kubelet (or kwok) starts it
    pod = parse_pod(body)
    rec = views(api, bodies).jobs[JobId("ns/a")]
    cycle.apply_sync(rt, rec, lifecycle.sync(rt.current(rec), pod, 1767225602.0))
    await asyncio.sleep(0.05)  # Running is written at once, and carries the placement with it
    (patch,) = (p["status"] for _, _, p in api.patches)
    assert patch["phase"] == "Running" and patch["placement"]["node"] == body["spec"]["nodeName"]
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {"Scheduled": "True", "Ready": "True"}
    now[0] = 60.0
    await asyncio.sleep(0.05)
    assert len(api.patches) == 1
    await rt.drain()
    assert len(api.patches) == 1
