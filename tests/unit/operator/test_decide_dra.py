"""Deciding DRA jobs: claims no device can hold, selectors, eligibility, claim memory, foreign claims."""

from __future__ import annotations

from typing import Any

from gpulane_core.model import JobId, NodeName
from gpulane_core.scheduler import SchedulerConfig, schedule_cycle
from gpulane_operator.claims import foreign_assignments, parse_claim
from gpulane_operator.crd import JobRecord, parse_job
from gpulane_operator.decide import plan, prepare
from gpulane_operator.inventory import merge, parse_node
from opfakes import job_body, node_body

ATTR = 'device.attributes["gpu.gpulane.dev"]'


def inventory(*names: str, gpus: int = 2):  # type: ignore[no-untyped-def]
    return merge({}, {n: parse_node(node_body(n, gpus)) for n in names})


def dra(name: str, persistent: str = "1Gi", ephemeral: str = "2Gi", selectors: list[str] | None = None,
        allocation: str | None = "dra") -> dict[str, Any]:  # fmt: skip
    body = job_body(name, persistent, ephemeral)
    if allocation:
        body["spec"]["allocation"] = allocation
    if selectors:
        body["spec"]["deviceSelectors"] = selectors
    return body


def jobs(*bodies: dict[str, Any]) -> dict[JobId, JobRecord]:
    return {r.id: r for r in (parse_job(b) for b in bodies)}


def test_a_claim_no_device_can_hold_fails_before_anything_is_created() -> None:
    js = jobs(dra("big", "20Gi", "4Gi"), job_body("plain-big", "20Gi", "4Gi"))
    prepared = prepare(js, {}, {}, inventory("n1"), {})
    assert [(r.name, r.error) for r in prepared.unfit] == [
        ("big", "claim big-gpulane: memory request 24576Mi exceeds the largest gpu.gpulane.dev device (16384Mi)")
    ]
    assert [p.job.name for p in prepared.pending] == ["ns/plain-big"]  # device-plugin jobs wait, as before


def test_bad_selectors_make_the_job_invalid_naming_the_selector() -> None:
    js = jobs(dra("attr", selectors=[f'{ATTR}.colour == "red"']), dra("cel", selectors=["device.attributes["]))
    prepared = prepare(js, {}, {}, inventory("n1"), {})
    errors = {r.name: r.error for r in prepared.invalid}
    assert "device.attributes[\"gpu.gpulane.dev\"].colour" in errors["attr"] and "known: device.driver" in errors["attr"]
    assert "not a valid CEL expression" in errors["cel"]
    assert prepared.pending == ()


def test_selectors_of_a_job_that_defaults_to_the_device_plugin_are_invalid() -> None:
    js = jobs(dra("a", selectors=[f"{ATTR}.index == 1"], allocation=None))
    assert "spec.deviceSelectors" in prepare(js, {}, {}, inventory("n1"), {}).invalid[0].error
    default_dra = prepare(js, {}, {}, inventory("n1"), {}, allocation="dra")
    assert default_dra.invalid == () and default_dra.dra == {JobId("ns/a")}


def test_selectors_restrict_placement_and_dra_creates_carry_the_claim_memory() -> None:
    # 3 x (1Gi + 6Gi) = 21Gi: they fit on the one eligible 16Gi GPU only by sharing a lane.
    js = jobs(*(dra(f"j{i}", "1Gi", "6Gi", selectors=[f'{ATTR}.uuid == "GPU-n2-1"']) for i in range(3)),
              job_body("plain"))  # fmt: skip
    inv = inventory("n1", "n2")
    prepared = prepare(js, {}, {}, inv, {})
    assert prepared.dra == {JobId(f"ns/j{i}") for i in range(3)}
    result = schedule_cycle(prepared.snapshot.schedulable, prepared.pending, SchedulerConfig(), 0.0)
    decided = plan(prepared, result, js, {}, {})
    where = {rec.name: (a.node, a.gpu_indices, a.charge_units) for rec, a in decided.creates}
    assert {where[f"j{i}"] for i in range(3)} == {("n2", (1,), 0)}  # no device-plugin count for DRA pods
    assert where["plain"][2] > 0
    # The lane opener pays persistent + lane, a sharer its persistent memory: together what the GPU commits.
    assert min(decided.claims.values()) == 1024
    assert sum(decided.claims.values()) == result.state.gpu_lanes(NodeName("n2"), 1).committed_mib
    assert set(decided.claims) == set(prepared.dra)


def test_foreign_claims_take_their_memory_out_of_the_lanes() -> None:
    inv = inventory("n1", gpus=1)
    claim = parse_claim({"metadata": {"name": "x", "namespace": "o", "uid": "u"}, "status": {"allocation": {
        "devices": {"results": [{"driver": "gpu.gpulane.dev", "pool": "n1", "device": "gpu-0",
                                 "consumedCapacity": {"memory": "12Gi"}}]}}}})  # fmt: skip
    js = jobs(dra("fits", "1Gi", "2Gi"), dra("too-big", "2Gi", "4Gi"))
    prepared = prepare(js, {}, {}, inv, {}, foreign=foreign_assignments([claim], inv))
    lanes = prepared.snapshot.state.gpu_lanes(NodeName("n1"), 0)
    assert lanes.persistent_mib == 12288 and lanes.free_mib == 4096
    result = schedule_cycle(prepared.snapshot.schedulable, prepared.pending, SchedulerConfig(), 0.0)
    assert [p.job for p in result.placements] == ["ns/fits"]
    assert "ns/too-big" in result.unschedulable
    assert prepared.snapshot.problems == ()
