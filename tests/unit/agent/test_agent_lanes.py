"""The agent's lane view: pods read only through gpulane_core.podcontract, grouped into lanes per GPU."""

from __future__ import annotations

from agent_testkit import NODE, assigned_pod
from gpulane_agent.deviceplugin.allocate import parse_allocation
from gpulane_agent.kube.api import PodView
from gpulane_agent.lanes import pod_lanes
from gpulane_core import podcontract as ann


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
