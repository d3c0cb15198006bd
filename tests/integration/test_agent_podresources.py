"""The agent reading a kubelet-side PodResources server over a real unix socket.

The peer serves ``v1.PodResourcesLister/List`` like the kubelet. The agent uses it to name the
container of a process whose runtime id is unknown, and reports (once) a pod whose units the kubelet
charged to another GPU than the operator assigned.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest
from gpulane_agent.agent import Agent
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.kube.api import PodView
from gpulane_agent.kube.memory import InMemoryKube
from gpulane_agent.podresources._proto import api_pb2, api_pb2_grpc
from gpulane_agent.podresources.check import REASON_MISMATCH
from gpulane_agent.settings import load_config
from gpulane_core import podcontract as ann

pytestmark = pytest.mark.integration

NODE = "node-pr"
UID = "5b4e28ba-2fa1-11d2-883f-0016d3cca427"


class Lister(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    def __init__(self, response: Any) -> None:
        self.response = response
        self.calls = 0

    async def List(self, request: Any, context: Any) -> Any:
        self.calls += 1
        return self.response


async def test_agent_uses_pod_resources_for_container_names_and_accounting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="gl-pr-", dir="/tmp"))
    socket = sock_dir / "kubelet.sock"
    backend = FakeBackend.default(NODE)
    gpu0, gpu1 = backend.gpus()[0].uuid, backend.gpus()[1].uuid
    pod = PodView("team", "trainer", UID, NODE, "Running", {
        ann.NODE: NODE, ann.GPU_INDEX: "0", ann.GPU_UUID: gpu0, ann.LANE: "lane-1", ann.LANE_SIZE_MIB: "2048",
        ann.PERSISTENT_MIB: "2048", ann.EPHEMERAL_MIB: "2048", ann.CHARGE_UNITS: "16",
        ann.MEMORY_LIMIT_MIB: "4096", ann.ALLOCATED: "true"}, {ann.LABEL_JOB: "resnet"})
    # the kubelet ignored the preference: the units came from GPU 1
    lister = Lister(api_pb2.ListPodResourcesResponse(pod_resources=[api_pb2.PodResources(
        name="trainer", namespace="team", containers=[api_pb2.ContainerResources(name="main", devices=[
            api_pb2.ContainerDevices(resource_name="gpulane.dev/gpu-memory",
                                     device_ids=[f"{gpu1}-m0", f"{gpu1}-m1"])])])]))
    server = grpc.aio.server()
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(lister, server)
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    proc = tmp_path / "proc"
    (proc / "900").mkdir(parents=True)
    (proc / "900" / "cgroup").write_text(f"0::/kubepods/pod{UID}/{'d' * 64}\n")  # runtime id not in status
    backend.register_process(0, 900, 1000)
    config = load_config(None, {}, {"node_name": NODE, "enforcement.proc_root": str(proc),
                                    "pod_resources.socket": str(socket)})
    kube = InMemoryKube([pod])
    agent = Agent(config, backend, None)
    agent.kube = kube
    try:
        await agent.tick()
        await agent.tick()
        assert lister.calls == 2
        usage = agent.view.current.usage
        assert [(u.uid, u.container, u.used_bytes) for u in usage] == [(UID, "main", 1000 * 1024 * 1024)]
        mismatch = [e for e in kube.events if e.reason == REASON_MISMATCH]
        assert len(mismatch) == 1 and gpu1 in mismatch[0].message and gpu0 in mismatch[0].message

        await server.stop(grace=0)  # the kubelet goes away: the agent carries on without PodResources
        with caplog.at_level(logging.INFO, logger="gpulane_agent.podresources.check"):
            await agent.tick()
            await agent.tick()
        assert sum("PodResources" in r.message for r in caplog.records) == 1
        assert agent.view.current.usage[0].container == ""
    finally:
        await server.stop(grace=0)
        shutil.rmtree(sock_dir, ignore_errors=True)
