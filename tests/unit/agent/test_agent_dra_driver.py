"""DraDriver's error paths that a real apiserver cannot produce on demand: no API yet, a non-UID uid,
an unwritable CDI directory. Each is one claim's error; the other claims in the call are unaffected."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gpulane_agent.dra.claims import DRIVER
from gpulane_agent.dra.plugin import ClaimRef, DraDriver, DriverContext
from gpulane_agent.gpu.fake import FakeBackend

NODE = "node-a"
GOOD = "4f1c2a9e-7b6d-4e1a-9c3b-2d5e8f0a1b2c"


class Claims:
    """The claim-reading half of the DraKube port over a dict (slices are not used by the driver)."""

    def __init__(self, claims: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self.claims = dict(claims)
        self.reads = 0

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.reads += 1
        return self.claims.get((namespace, name))


def allocated(uid: str) -> dict[str, Any]:
    result = {"request": "gpu", "driver": DRIVER, "pool": NODE, "device": "gpu-0", "consumedCapacity": {"memory": "1Gi"}}
    return {"metadata": {"namespace": "ns", "name": "c", "uid": uid}, "status": {"allocation": {"devices": {"results": [result]}}}}


def driver(cdi_dir: Path, kube: Any) -> DraDriver:
    return DraDriver(DriverContext(NODE, cdi_dir, "/run/gpulane/coordinator.sock"), FakeBackend.default(NODE), lambda: kube)


async def test_without_the_api_each_claim_says_so_and_nothing_is_written(tmp_path: Path) -> None:
    out = await driver(tmp_path / "cdi", None).prepare([ClaimRef("ns", GOOD, "c")])
    assert out[GOOD].error == f"claim ns/c (uid {GOOD}): cannot read it from the API server: the agent has not connected to the API server yet"
    assert not (tmp_path / "cdi").exists()


async def test_a_uid_that_is_not_a_kubernetes_uid_is_refused_before_any_read_or_file(tmp_path: Path) -> None:
    kube = Claims({("ns", "c"): allocated("../../etc/passwd")})
    d = driver(tmp_path, kube)
    prepared = await d.prepare([ClaimRef("ns", "../../etc/passwd", "c")])
    assert prepared["../../etc/passwd"].error == "claim ns/c (uid ../../etc/passwd): the uid is not a Kubernetes UID"
    unprepared = await d.unprepare([ClaimRef("ns", "../x", "c")])
    assert unprepared["../x"].error == "claim ns/c (uid ../x): the uid is not a Kubernetes UID"
    assert kube.reads == 0 and list(tmp_path.iterdir()) == []


async def test_an_unwritable_cdi_dir_fails_that_claim_with_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "cdi"
    blocker.write_text("a file where the directory should be")
    out = await driver(blocker, Claims({("ns", "c"): allocated(GOOD)})).prepare([ClaimRef("ns", GOOD, "c")])
    assert out[GOOD].error.startswith(f"claim ns/c (uid {GOOD}): cannot write its CDI spec in {blocker}: ")
    assert out[GOOD].devices == ()
