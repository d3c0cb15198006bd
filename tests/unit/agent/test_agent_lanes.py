"""The agent's lane view: pods read only through gpulane_core.podcontract, grouped into lanes per GPU."""

from __future__ import annotations

from pathlib import Path

from agent_testkit import NODE, assigned_pod, write_proc
from gpulane_agent.agent import Agent
from gpulane_agent.deviceplugin.allocate import parse_allocation
from gpulane_agent.enforcement.verdict import Violation, judge
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.kube.api import PodView
from gpulane_agent.kube.memory import InMemoryKube
from gpulane_agent.lanes import ContainerUsage, LaneView, lane_views, pod_lanes
from gpulane_agent.settings import EnforcementPolicy, load_config
from gpulane_core import podcontract as ann
from gpulane_core.quantity import MIB


def _without(pod: PodView, key: str) -> PodView:
    return PodView(pod.namespace, pod.name, pod.uid, pod.node_name, pod.phase,
                   {k: v for k, v in pod.annotations.items() if k != key}, pod.labels, pod.container_ids)


def _with(pod: PodView, **annotations: str) -> PodView:
    extra = {f"gpulane.dev/{k.replace('_', '-')}": v for k, v in annotations.items()}
    return PodView(pod.namespace, pod.name, pod.uid, pod.node_name, pod.phase, {**pod.annotations, **extra},
                   pod.labels, pod.container_ids)


def test_the_lane_view_and_allocate_read_the_same_podcontract_assignment() -> None:
    pod = assigned_pod("trainer", job="resnet", gpu_uuid="GPU-x", lane="lane-4", lane_size_mib=2048,
                       limit_mib=3072, phase="Running")
    (lane,) = pod_lanes([pod], NODE)
    allocation = parse_allocation(pod)
    assert isinstance(allocation.assignment, ann.Assignment)  # the one Assignment type, podcontract's
    a = allocation.assignment
    assert (lane.job, lane.lane, lane.lane_size_mib, lane.limit_mib) == (a.job, a.lane, a.lane_size_mib, 3072)
    assert lane.job == "team/resnet" == ann.pod_job("team", "trainer", pod.labels)


def test_a_pod_without_a_job_label_is_its_own_job() -> None:
    assert ann.pod_job("team", "trainer", {}) == "team/trainer"
    assert ann.pod_job("team", "trainer", {ann.LABEL_JOB: " "}) == "team/trainer"


def test_pods_that_hold_no_lane_here_are_left_out() -> None:
    good = assigned_pod("good", phase="Running")
    pods = [
        good,
        assigned_pod("elsewhere", node="node-b", phase="Running"),
        assigned_pod("done", phase="Succeeded"),
        _without(assigned_pod("no-limit", phase="Running"), ann.MEMORY_LIMIT_MIB),
        _without(assigned_pod("no-persistent", phase="Running"), ann.PERSISTENT_MIB),
        _with(assigned_pod("bad-index", phase="Running"), gpu_index="zero"),
        _with(assigned_pod("bad-size", phase="Running"), lane_size_mib="big"),
    ]
    assert [p.pod for p in pod_lanes(pods, NODE)] == ["good"]


TWO = ((0, "GPU-a"), (1, "GPU-b"))


def test_a_two_gpu_job_has_its_lane_on_both_gpus_with_the_use_of_each() -> None:
    pod = assigned_pod("big", uid="u-big", gpus=TWO, lane="lane-0", lane_size_mib=15360, persistent_mib=1024,
                       ephemeral_mib=8192, limit_mib=16384, phase="Running")
    single = assigned_pod("small", uid="u-small", gpu_index=2, gpu_uuid="GPU-c", lane="lane-0", phase="Running")
    lanes = pod_lanes([pod, single], NODE)
    assert [(p.pod, p.gpu_indices, p.gpu_uuids) for p in lanes] == [
        ("big", (0, 1), ("GPU-a", "GPU-b")), ("small", (2,), ("GPU-c",))]
    usage = (ContainerUsage("u-big", "main", "GPU-a", 1000 * MIB), ContainerUsage("u-big", "main", "GPU-b", 3000 * MIB),
             ContainerUsage("u-small", "main", "GPU-c", 10 * MIB))
    assert lane_views(lanes, usage) == (
        LaneView(0, "GPU-a", "lane-0", 15360, 1000 * MIB, ("team/big",)),
        LaneView(1, "GPU-b", "lane-0", 15360, 3000 * MIB, ("team/big",)),
        LaneView(2, "GPU-c", "lane-0", 2048, 10 * MIB, ("team/small",)),
    )


def _judge(used_mib: dict[str, int], tolerance_mib: int = 0) -> tuple[Violation, ...]:
    lanes = pod_lanes([assigned_pod("big", uid="u-big", gpus=TWO, limit_mib=4096, phase="Running")], NODE)
    usage = [ContainerUsage("u-big", "main", gpu, mib * MIB) for gpu, mib in used_mib.items()]
    return judge(lanes, usage, EnforcementPolicy.REPORT, tolerance_mib, frozenset()).violations


def test_use_is_judged_per_gpu_and_the_total_under_the_sum_is_no_free_pass() -> None:
    (v,) = _judge({"GPU-a": 1000, "GPU-b": 5000})  # 6000 MiB in all, under 2 x 4096
    assert (v.gpu_uuid, v.used_mib, v.limit_mib, v.assigned) == ("GPU-b", 5000, 4096, True)
    assert v.message.startswith("pod team/big uses 5000 MiB of GPU memory on GPU GPU-b, over its lane limit of "
                                "4096 MiB (lane GPU-b/lane-1)")
    assert _judge({"GPU-a": 4096, "GPU-b": 4096}) == ()  # at the limit on each: fine, 8192 in all
    assert _judge({"GPU-a": 4100, "GPU-b": 0}, tolerance_mib=8) == ()


def test_over_on_both_gpus_is_one_violation_naming_the_worst() -> None:
    (v,) = _judge({"GPU-a": 5000, "GPU-b": 4500})
    assert (v.gpu_uuid, v.used_mib) == ("GPU-a", 5000)


def test_use_on_a_gpu_the_pod_was_not_given_is_a_violation() -> None:
    (v,) = _judge({"GPU-a": 10, "GPU-z": 100})
    assert (v.gpu_uuid, v.limit_mib, v.assigned) == ("GPU-z", 0, False)
    assert "on GPU GPU-z, which is not assigned to it (lane lane-1)" in v.message
    assert _judge({"GPU-z": 4}, tolerance_mib=4) == ()


async def test_the_agent_publishes_a_two_gpu_lane_on_both_gpus_and_flags_one_gpu_over(tmp_path: Path) -> None:
    uid = "4b4e28ba-2fa1-11d2-883f-0016d3cca427"
    config = load_config(None, {}, {"node_name": NODE, "enforcement.proc_root": str(tmp_path),
                                    "backend.fake_process_dir": ""})
    backend = FakeBackend.default(NODE)
    g0, g1 = backend.gpus()[0], backend.gpus()[1]
    pod = assigned_pod("big", uid=uid, gpus=((0, g0.uuid), (1, g1.uuid)), lane="lane-0", lane_size_mib=3072,
                       persistent_mib=1024, ephemeral_mib=3072, limit_mib=4096, allocated=True, phase="Running",
                       container_ids={"c" * 64: "main"})
    kube = InMemoryKube([pod])
    write_proc(tmp_path, 77, uid, "c" * 64)
    backend.register_process(0, 77, 1000)
    backend.register_process(1, 77, 5000)  # one process, over on GPU 1 only; 6000 < 2 x 4096 in all
    agent = Agent(config, backend, None)
    agent.kube = kube

    await agent.tick()
    gpus = kube.gpunodes[NODE]["status"]["gpus"]
    assert gpus[0]["lanes"] == [{"id": "lane-0", "sizeMiB": 3072, "usedMiB": 1000, "jobs": ["team/big"]}]
    assert gpus[1]["lanes"] == [{"id": "lane-0", "sizeMiB": 3072, "usedMiB": 5000, "jobs": ["team/big"]}]
    assert all(g["lanes"] == [] for g in gpus[2:])
    (event,) = kube.events
    assert event.reason == "GPULaneExceeded"
    assert f"uses 5000 MiB of GPU memory on GPU {g1.uuid}, over its lane limit of 4096 MiB" in event.message
