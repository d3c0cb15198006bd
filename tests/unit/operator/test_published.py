"""DRA jobs are placed only on GPUs a gpu.gpulane.dev ResourceSlice publishes, and wait saying so (pure)."""

from __future__ import annotations

from gpulane_operator.decide import prepare
from gpulane_operator.published import parse_slice, published_uuids
from opfakes import job_body
from test_decide_dra import dra, inventory, jobs


def slice_body(node: str, uuids: list[str], driver: str = "gpu.gpulane.dev") -> dict[str, object]:
    devices = [{"name": f"gpu-{i}", "attributes": {"uuid": {"string": u}, "index": {"int": i}}} for i, u in enumerate(uuids)]
    return {"metadata": {"name": f"{node}-{driver}"}, "spec": {"driver": driver, "nodeName": node, "devices": devices}}


def test_a_slice_of_our_driver_publishes_its_devices_uuids_and_others_publish_nothing() -> None:
    ours = parse_slice(slice_body("n1", ["GPU-a", "GPU-b"]))
    assert (ours.node, ours.uuids) == ("n1", frozenset({"GPU-a", "GPU-b"}))
    assert parse_slice(slice_body("n1", ["GPU-c"], driver="gpu.nvidia.com")).uuids == frozenset()
    assert published_uuids([ours, parse_slice(slice_body("n2", []))]) == frozenset({"GPU-a", "GPU-b"})


def test_with_nothing_published_a_dra_job_waits_naming_what_for() -> None:
    inv = inventory("n1")
    prepared = prepare(jobs(dra("a")), {}, {}, inv, {}, published=frozenset())
    assert prepared.pending == () and prepared.unfit == () and prepared.invalid == ()
    (waiting,) = prepared.unpublished
    assert "waiting for a gpu.gpulane.dev ResourceSlice to publish one of the 2 GPU(s)" in waiting.error


def test_only_published_gpus_are_allowed_and_all_published_means_no_restriction() -> None:
    inv = inventory("n1", "n2")
    n1 = frozenset(g.uuid for g in inv["n1"].node.gpus)
    (partly,) = prepare(jobs(dra("a")), {}, {}, inv, {}, published=n1).pending
    assert partly.job.allowed_gpus == n1
    every = frozenset(g.uuid for i in inv.values() for g in i.node.gpus)
    (fully,) = prepare(jobs(dra("a")), {}, {}, inv, {}, published=every).pending
    assert fully.job.allowed_gpus is None  # no needless narrowing: the search keeps its symmetry shortcut


def test_selectors_and_publication_intersect() -> None:
    inv = inventory("n1", "n2")
    n2 = frozenset(g.uuid for g in inv["n2"].node.gpus)
    index0 = 'device.attributes["gpu.gpulane.dev"].index == 0'
    (job,) = prepare(jobs(dra("a", selectors=[index0])), {}, {}, inv, {}, published=n2).pending
    assert job.job.allowed_gpus == frozenset(g.uuid for g in inv["n2"].node.gpus if g.index == 0)
    n1_gpu1 = frozenset(g.uuid for g in inv["n1"].node.gpus if g.index == 1)
    waiting = prepare(jobs(dra("a", selectors=[index0])), {}, {}, inv, {}, published=n1_gpu1)
    assert waiting.pending == () and "one of the 2 GPU(s)" in waiting.unpublished[0].error


def test_device_plugin_jobs_do_not_wait_for_slices() -> None:
    (job,) = prepare(jobs(job_body("a")), {}, {}, inventory("n1"), {}, published=frozenset()).pending
    assert job.job.allowed_gpus is None
