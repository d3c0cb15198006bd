"""Prepared DRA claims on the GPUNode: recorded in the claims' CDI specs (cdi.read_prepared), shown per GPU."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml
from gpulane_agent.dra import cdi
from gpulane_agent.dra.cdi import PreparedClaim
from gpulane_agent.dra.claims import DRIVER, claim_grant, claim_view
from gpulane_agent.gpu.backend import GpuInfo
from gpulane_agent.inventory import gpunode_status
from gpulane_core.quantity import MIB

NODE = "node-a"
UID = "4f1c2a9e-7b6d-4e1a-9c3b-2d5e8f0a1b2c"
OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
GPUS = (GpuInfo(0, "GPU-aaaa", "A100", 16384 * MIB), GpuInfo(1, "GPU-bbbb", "A100", 16384 * MIB))
CRD = Path(__file__).resolve().parents[3] / "crds" / "gpunodes.gpulane.dev.yaml"
NOW = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def claim(uid: str, name: str, memory: dict[str, str]) -> dict[str, Any]:
    results = [{"request": "gpu", "driver": DRIVER, "pool": NODE, "device": d, "consumedCapacity": {"memory": m}}
               for d, m in memory.items()]  # fmt: skip
    return {"metadata": {"namespace": "team", "name": name, "uid": uid},
            "status": {"allocation": {"devices": {"results": results}}}}  # fmt: skip


def write_prepared(cdi_dir: Path, obj: dict[str, Any]) -> None:
    """What DraDriver._prepare_one writes for a claim."""
    view = claim_view(obj)
    grant = claim_grant(view, NODE, GPUS, "/run/gpulane/coordinator.sock")
    cdi.write_spec(cdi_dir, view.uid, cdi.spec(view.uid, grant.grant, cdi.spec_annotations(view, grant.results)))


def test_a_two_gpu_claim_is_recorded_per_gpu_with_each_results_consumed_memory(tmp_path: Path) -> None:
    write_prepared(tmp_path, claim(UID, "big", {"gpu-1": "4Gi", "gpu-0": "3Gi"}))
    document = json.loads((tmp_path / cdi.spec_name(UID)).read_text())
    assert document["annotations"] == {
        "gpu.gpulane.dev/claim": "team/big", "gpu.gpulane.dev/claim-uid": UID,
        "gpu.gpulane.dev/memory-mib": "0=3072,1=4096"}  # fmt: skip
    assert cdi.from_spec(document) == (
        PreparedClaim("team", "big", UID, 0, 3072), PreparedClaim("team", "big", UID, 1, 4096))  # fmt: skip


def test_read_prepared_lists_every_spec_sorted_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    assert cdi.read_prepared(tmp_path / "absent") == ()
    write_prepared(tmp_path, claim(OTHER, "b", {"gpu-1": "1Gi"}))
    write_prepared(tmp_path, claim(UID, "a", {"gpu-0": "2Gi"}))
    (tmp_path / f"{DRIVER}-broken.json").write_text("{not json")
    old = cdi.spec("11111111-2222-4333-8444-555555555555", claim_grant(
        claim_view(claim(UID, "x", {"gpu-0": "1Gi"})), NODE, GPUS, "/s").grant)  # fmt: skip
    (tmp_path / f"{DRIVER}-old.json").write_text(json.dumps(old))  # a spec from before the annotations
    (tmp_path / "other-vendor.json").write_text(json.dumps({"annotations": {cdi.CLAIM_KEY: "x/y"}}))
    assert cdi.read_prepared(tmp_path) == (
        PreparedClaim("team", "a", UID, 0, 2048), PreparedClaim("team", "b", OTHER, 1, 1024))  # fmt: skip
    cdi.remove_spec(tmp_path, UID)  # NodeUnprepareResources
    assert cdi.read_prepared(tmp_path) == (PreparedClaim("team", "b", OTHER, 1, 1024),)


def test_malformed_annotations_read_as_no_claim() -> None:
    good = {cdi.CLAIM_KEY: "ns/n", cdi.UID_KEY: UID, cdi.MEMORY_KEY: "0=10"}
    assert cdi.from_spec({"annotations": good}) == (PreparedClaim("ns", "n", UID, 0, 10),)
    for key, bad in ((cdi.CLAIM_KEY, "no-slash"), (cdi.MEMORY_KEY, "0=ten"), (cdi.MEMORY_KEY, ""),
                     (cdi.UID_KEY, "")):  # fmt: skip
        assert cdi.from_spec({"annotations": {**good, key: bad}}) == ()


def test_the_gpunode_lists_each_gpus_claims_and_its_free_memory_only_in_dra_mode() -> None:
    prepared = (PreparedClaim("team", "a", UID, 0, 2048), PreparedClaim("team", "b", OTHER, 0, 1024),
                PreparedClaim("team", "b", OTHER, 1, 20000))  # fmt: skip
    status = gpunode_status(GPUS, {}, {}, (), NOW, "0.1.0", 256, prepared)
    gpu0, gpu1 = status["gpus"]
    assert gpu0["draClaims"] == [
        {"namespace": "team", "name": "a", "uid": UID, "memoryMiB": 2048},
        {"namespace": "team", "name": "b", "uid": OTHER, "memoryMiB": 1024},
    ]
    assert gpu0["freeMiB"] == 16384 - 3072
    assert gpu1["freeMiB"] == 0  # more than the GPU has is floored, never negative
    empty = gpunode_status(GPUS, {}, {}, (), NOW, "0.1.0", 256, ())
    assert [(g["draClaims"], g["freeMiB"]) for g in empty["gpus"]] == [([], 16384), ([], 16384)]
    plain = gpunode_status(GPUS, {}, {}, (), NOW, "0.1.0", 256)
    assert not {"draClaims", "freeMiB"} & {k for g in plain["gpus"] for k in g}

    item = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"]["properties"]["gpus"]["items"]  # fmt: skip
    entry = item["properties"]["draClaims"]["items"]
    for gpu in status["gpus"]:
        assert set(gpu) <= set(item["properties"])
        for c in gpu["draClaims"]:
            assert set(entry["required"]) <= set(c) <= set(entry["properties"])
