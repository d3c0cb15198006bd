"""Health transitions, the GPUNode status shape, and one agent tick end to end against in-memory ports."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_testkit import NODE, assigned_pod, write_proc
from gpulane_agent.agent import Agent
from gpulane_agent.gpu.backend import EventKind, GpuEvent
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthBoard, HealthState, next_health, probe_lost
from gpulane_agent.inventory import gpunode_status
from gpulane_agent.kube.api import KubeError
from gpulane_agent.kube.memory import InMemoryKube
from gpulane_agent.lanes import LaneView
from gpulane_agent.settings import load_config
from gpulane_core.quantity import MIB

CRD = Path(__file__).resolve().parents[3] / "crds" / "gpunodes.gpulane.dev.yaml"


def test_xid_is_sticky_lost_recovers_and_application_xids_are_ignored() -> None:
    s = next_health(HealthState(), [GpuEvent(1, EventKind.XID, code=79), GpuEvent(2, EventKind.XID, code=13)],
                    frozenset({3}))
    assert s.as_map(range(4)) == {0: True, 1: False, 2: True, 3: False}
    s = next_health(s, [], frozenset())
    assert s.as_map(range(4)) == {0: True, 1: False, 2: True, 3: True}


async def test_health_board_wakes_watchers_only_on_change() -> None:
    board = HealthBoard()
    assert not await board.update(HealthState())
    assert await board.update(HealthState(lost=frozenset({0})))
    assert await board.wait_newer(0) == 1


def test_probe_lost_reports_only_lost_gpus() -> None:
    fake = FakeBackend.default(NODE)
    fake.lose_gpu(1)
    fake.fail_call(2, "memory")
    assert probe_lost(fake) == frozenset({1})


def test_gpunode_status_matches_the_crd_schema() -> None:
    fake = FakeBackend.default(NODE)
    gpus = fake.gpus()
    lane = LaneView(0, gpus[0].uuid, "lane-1", 2048, 700 * MIB, ("team/a", "team/b"))
    status = gpunode_status(gpus, {0: 956 * MIB}, {1: False}, (lane,),
                            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "0.1.0", 256)
    assert status["heartbeatTime"] == "2026-01-02T03:04:05Z"
    assert status["gpus"][0] == {
        "index": 0, "uuid": gpus[0].uuid, "model": "Fake-GPU-16G", "memoryMiB": 16384, "health": "Healthy",
        "usedMiB": 956, "lanes": [{"id": "lane-1", "sizeMiB": 2048, "usedMiB": 700, "jobs": ["team/a", "team/b"]}],
    }
    assert status["gpus"][1]["health"] == "Unhealthy" and "usedMiB" not in status["gpus"][1]
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(status) <= set(schema["properties"])
    item = schema["properties"]["gpus"]["items"]
    for gpu in status["gpus"]:
        assert set(item["required"]) <= set(gpu) and set(gpu) <= set(item["properties"])
        assert gpu["health"] in item["properties"]["health"]["enum"]
        for lane_entry in gpu["lanes"]:
            assert set(lane_entry) <= set(item["properties"]["lanes"]["items"]["properties"])


async def test_agent_tick_publishes_lanes_and_releases_them_when_the_pod_finishes(tmp_path: Path) -> None:
    uid = "3b4e28ba-2fa1-11d2-883f-0016d3cca427"
    config = load_config(None, {}, {"node_name": NODE, "enforcement.proc_root": str(tmp_path),
                                    "inventory.heartbeat_s": 3600})
    backend = FakeBackend.default(NODE)
    gpu0 = backend.gpus()[0].uuid
    kube = InMemoryKube([assigned_pod("a", uid=uid, gpu_uuid=gpu0, allocated=True, phase="Running")])
    write_proc(tmp_path, 77, uid, "c" * 64)
    backend.register_process(0, 77, 512)
    agent = Agent(config, backend, None)
    agent.kube = kube

    await agent.tick()
    lanes = kube.gpunodes[NODE]["status"]["gpus"][0]["lanes"]
    assert lanes == [{"id": "lane-1", "sizeMiB": 2048, "usedMiB": 512, "jobs": ["team/a"]}]
    assert agent.view.current.lanes[0].used_bytes == 512 * MIB

    kube.finish_pod("team/a")
    await agent.tick()  # not due for a heartbeat, but the lanes changed: published at once
    assert kube.gpunodes[NODE]["status"]["gpus"][0]["lanes"] == []
    assert agent.view.current.lanes == ()


class _NoCrdYet(InMemoryKube):
    """The GPUNode CRD is missing for the first calls, as on a cluster where the chart is half installed."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def apply_gpunode(self, name: str, labels: Mapping[str, str], status: Mapping[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise KubeError("the server could not find the requested resource", status=404)
        await super().apply_gpunode(name, labels, status)


async def test_inventory_failure_is_logged_once_and_retried_until_it_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(None, {}, {"node_name": NODE, "enforcement.proc_root": str(tmp_path)})
    kube = _NoCrdYet(failures=3)
    agent = Agent(config, FakeBackend.default(NODE), None)
    agent.kube = kube
    with caplog.at_level(logging.INFO, logger="gpulane_agent.agent"):
        for _ in range(4):
            await agent.tick()
    assert sum("cannot publish GPUNode" in r.message for r in caplog.records) == 1
    assert sum("published again" in r.message for r in caplog.records) == 1
    assert len(kube.gpunodes[NODE]["status"]["gpus"]) == 4
