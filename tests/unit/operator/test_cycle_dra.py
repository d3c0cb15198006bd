"""The apply side of a DRA job against an in-memory KubeApi: order, adoption, immutability, failures."""

from __future__ import annotations

from typing import Any

from gpulane_operator.crd import Reason
from gpulane_operator.k8s.api import ApiError
from gpulane_operator.removals import evict
from opfakes import FakeKubeApi, job_body
from test_cycle import applied_statuses, run, runtime, views


def dra(name: str, *, selectors: list[str] | None = None) -> dict[str, Any]:
    body = job_body(name, "1Gi", "2Gi")
    body["spec"]["allocation"] = "dra"
    if selectors:
        body["spec"]["deviceSelectors"] = selectors
    return body


async def test_pod_then_claim_then_one_status_write_then_binding(api: FakeKubeApi) -> None:
    rt = runtime(api)
    await run(rt, views(api, [dra("a")]))
    assert api.calls == ["create_pod", "create_claim", "patch_claim_status", "bind_pod"]
    pod = api.pods[("ns", "a-gpulane")]
    claim = api.claims[("ns", "a-gpulane")]
    assert claim["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    (result,) = claim["status"]["allocation"]["devices"]["results"]
    node, index = pod["metadata"]["annotations"]["gpulane.dev/node"], pod["metadata"]["annotations"]["gpulane.dev/gpu-index"]
    assert (result["pool"], result["device"], result["consumedCapacity"]) == (node, f"gpu-{index}", {"memory": "3072Mi"})
    assert claim["status"]["reservedFor"] == [{"resource": "pods", "name": "a-gpulane", "uid": pod["metadata"]["uid"]}]
    status = applied_statuses(api)["a"]
    assert status["phase"] == "Scheduled" and status["placement"]["claim"] == "a-gpulane"
    assert status["placement"]["allocation"] == "dra"


async def test_a_dra_job_waits_until_a_slice_publishes_a_gpu_and_says_so(api: FakeKubeApi) -> None:
    rt = runtime(api)
    await run(rt, views(api, [dra("a")], published=False))  # the nodes' GPUs known from labels only
    assert api.calls == [] and api.claims == {}
    status = applied_statuses(api)["a"]
    assert status["phase"] == "Pending"
    (scheduled,) = [c for c in status["conditions"] if c["type"] == "Scheduled"]
    assert scheduled["reason"] == "Unschedulable"
    assert "waiting for a gpu.gpulane.dev ResourceSlice to publish one of the 4 GPU(s)" in scheduled["message"]
    await run(rt, views(api, [dra("a")], statuses={"a": status}))  # the agents published their slices
    assert api.calls == ["create_pod", "create_claim", "patch_claim_status", "bind_pod"]


async def test_device_plugin_jobs_still_cost_a_create_and_a_binding(api: FakeKubeApi) -> None:
    await run(runtime(api), views(api, [job_body("a")]))
    assert api.calls == ["create_pod", "bind_pod"] and api.claims == {}


async def test_a_restart_after_the_claim_adopts_it_and_never_rewrites_the_allocation(api: FakeKubeApi) -> None:
    api.fail["bind_pod"] = ApiError(500, "etcd timeout")
    await run(runtime(api), views(api, [dra("a")]))
    allocated = api.claims[("ns", "a-gpulane")]["status"]["allocation"]
    api.calls.clear()
    await run(runtime(api), views(api, [dra("a")]))  # a fresh operator resumes the pod
    assert api.calls == ["create_claim", "read_claim", "bind_pod"]  # adopted: no second status write
    assert api.claims[("ns", "a-gpulane")]["status"]["allocation"] == allocated
    assert applied_statuses(api)["a"]["phase"] == "Scheduled"


async def test_a_claim_allocated_differently_is_not_rewritten_the_pod_goes(api: FakeKubeApi) -> None:
    api.fail["bind_pod"] = ApiError(500, "etcd timeout")
    await run(runtime(api), views(api, [dra("a")]))
    results = api.claims[("ns", "a-gpulane")]["status"]["allocation"]["devices"]["results"]
    results[0]["device"] = "gpu-7"  # someone allocated it elsewhere
    rt = runtime(api)
    await run(rt, views(api, [dra("a")]))
    assert api.pods == {} and api.claims == {} and api.binds == []
    status = applied_statuses(api)["a"]
    assert status["phase"] == "Pending" and "claim a-gpulane is allocated differently" in status["message"]
    assert rt.cache.assumed == {}


async def test_a_definitive_claim_error_deletes_the_pod_and_fails_the_job_naming_the_claim(api: FakeKubeApi) -> None:
    api.fail["create_claim"] = ApiError(422, "spec.devices.requests[0].exactly.selectors[0].cel.expression: compile error")
    rt = runtime(api)
    await run(rt, views(api, [dra("a")]))
    assert api.pods == {} and api.claims == {} and api.binds == []
    status = applied_statuses(api)["a"]
    assert status["phase"] == "Failed"
    assert status["message"] == "claim a-gpulane: spec.devices.requests[0].exactly.selectors[0].cel.expression: compile error"
    assert rt.cache.assumed == {}
    assert any(e["reason"] == "Failed" and "claim a-gpulane" in e["message"] for e in api.events)


async def test_an_unknown_outcome_leaves_the_pod_unbound_and_retries(api: FakeKubeApi) -> None:
    api.fail["patch_claim_status"] = ApiError(503, "unavailable")
    rt = runtime(api)
    await run(rt, views(api, [dra("a")]))
    assert api.binds == [] and "status" not in api.claims[("ns", "a-gpulane")]
    assert applied_statuses(api)["a"]["phase"] == "Pending"
    await run(rt, views(api, [dra("a")], applied_statuses(api)))
    assert len(api.binds) == 1 and "allocation" in api.claims[("ns", "a-gpulane")]["status"]


async def test_a_claim_left_by_an_earlier_pod_is_replaced(api: FakeKubeApi) -> None:
    stale = {"metadata": {"name": "a-gpulane", "namespace": "ns", "uid": "old",
                          "ownerReferences": [{"kind": "Pod", "name": "a-gpulane", "uid": "earlier-pod"}]},
             "status": {"allocation": {"devices": {"results": [{"driver": "gpu.gpulane.dev", "pool": "n9",
                                                                "device": "gpu-0"}]}}}}  # fmt: skip
    api.claims[("ns", "a-gpulane")] = stale
    await run(runtime(api), views(api, [dra("a")]))
    claim = api.claims[("ns", "a-gpulane")]
    assert claim["metadata"]["uid"] != "old" and claim["status"]["allocation"]["devices"]["results"][0]["pool"] != "n9"
    assert len(api.binds) == 1


async def test_bad_claims_create_nothing_and_say_why(api: FakeKubeApi) -> None:
    big = job_body("big", "20Gi", "4Gi")
    big["spec"]["allocation"] = "dra"
    bodies = [big, dra("sel", selectors=['device.attributes["gpu.gpulane.dev"].vendor == "x"'])]
    await run(runtime(api), views(api, bodies))
    assert api.pods == {} and api.claims == {}
    statuses = applied_statuses(api)
    assert statuses["big"]["phase"] == "Failed" and statuses["big"]["message"].startswith("claim big-gpulane: memory")
    assert statuses["sel"]["phase"] == "Failed" and ".vendor" in statuses["sel"]["message"]
    reasons = {e["reason"] for e in api.events}
    assert {"Unschedulable", "InvalidSpec"} <= reasons


async def test_preempting_or_losing_a_dra_pod_deletes_its_claim(api: FakeKubeApi) -> None:
    rt = runtime(api)
    v = views(api, [dra("a")])
    await run(rt, v)
    v = views(api, [dra("a")], applied_statuses(api))
    await evict(rt, next(iter(v.jobs)), Reason.PREEMPTED, claim=True)
    assert api.pods == {} and api.claims == {}
