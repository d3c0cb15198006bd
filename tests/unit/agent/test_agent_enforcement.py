"""Lane enforcement: cgroup attribution, the pure verdict, and report vs evict applied through the port."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_testkit import NODE, assigned_pod, write_proc
from gpulane_agent.enforcement.attribution import ProcReader, attribute, owner_from_cgroup
from gpulane_agent.enforcement.enforcer import REASON_EVICTED, REASON_OVER_LANE, Enforcer
from gpulane_agent.enforcement.verdict import Action, judge
from gpulane_agent.gpu.backend import GpuProcess
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.kube.memory import InMemoryKube
from gpulane_agent.lanes import ContainerUsage, pod_lanes
from gpulane_agent.settings import EnforcementConfig, EnforcementPolicy
from gpulane_agent.stats import AgentStats
from gpulane_core.quantity import MIB

UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
CID = "a" * 64


def test_cgroup_v1_and_systemd_v2_paths_give_pod_uid_and_container(tmp_path: Path) -> None:
    write_proc(tmp_path, 10, UID, CID)
    write_proc(tmp_path, 11, UID, CID, systemd=True)
    reader = ProcReader(tmp_path)
    for pid in (10, 11):
        owner = reader.owner(pid)
        assert owner is not None and owner.pod_uid == UID and owner.container_id == CID
    assert owner_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n") is None
    assert reader.owner(99) is None  # exited


def test_attribute_sums_per_container_and_ignores_foreign_processes() -> None:
    pods = pod_lanes([assigned_pod("p", uid=UID, container_ids={CID: "trainer"})], NODE)
    owners = {1: owner_from_cgroup(f"0::/kubepods/pod{UID}/{CID}"), 2: owner_from_cgroup(f"0::/kubepods/pod{UID}/{CID}"),
              3: None}
    procs = {"GPU-aaaa": [GpuProcess(1, 100 * MIB), GpuProcess(2, 50 * MIB), GpuProcess(3, 999 * MIB)]}
    assert attribute(procs, owners, pods) == (ContainerUsage(UID, "trainer", "GPU-aaaa", 150 * MIB),)


def test_verdict_flags_once_per_excursion_with_tolerance() -> None:
    lanes = pod_lanes([assigned_pod("p", uid=UID, limit_mib=1000)], NODE)
    over = (ContainerUsage(UID, "", "GPU-aaaa", 1001 * MIB),)
    v = judge(lanes, over, EnforcementPolicy.REPORT, 0, frozenset())
    assert [(x.pod, x.used_mib, x.limit_mib, x.action) for x in v.violations] == [("p", 1001, 1000, Action.REPORT)]
    assert judge(lanes, over, EnforcementPolicy.REPORT, 0, v.over).violations == ()  # still the same excursion
    assert judge(lanes, over, EnforcementPolicy.REPORT, 5, frozenset()).over == frozenset()  # within tolerance
    back = judge(lanes, (ContainerUsage(UID, "", "GPU-aaaa", 10 * MIB),), EnforcementPolicy.REPORT, 0, v.over)
    assert back.over == frozenset()
    assert judge(lanes, over, EnforcementPolicy.EVICT, 0, back.over).violations[0].action is Action.EVICT


@pytest.mark.parametrize("policy", [EnforcementPolicy.REPORT, EnforcementPolicy.EVICT])
async def test_a_fake_process_over_its_lane_is_handled_per_policy(tmp_path: Path, policy: EnforcementPolicy) -> None:
    backend = FakeBackend.default(NODE)
    gpu0 = backend.gpus()[0].uuid  # where the operator put both
    good_uid = "2b4e28ba-2fa1-11d2-883f-0016d3cca427"
    kube = InMemoryKube([
        assigned_pod("greedy", uid=UID, gpu_uuid=gpu0, limit_mib=1024, allocated=True, phase="Running"),
        assigned_pod("polite", uid=good_uid, gpu_uuid=gpu0, limit_mib=1024, allocated=True, phase="Running"),
    ])
    write_proc(tmp_path, 500, UID, CID)
    write_proc(tmp_path, 600, good_uid, CID)
    backend.register_process(0, 500, 1500)
    backend.register_process(0, 600, 900)
    stats = AgentStats()
    enforcer = Enforcer(backend, ProcReader(tmp_path), EnforcementConfig(policy=policy), stats)

    lanes = pod_lanes(await kube.list_node_pods(NODE), NODE)
    violations = enforcer.decide(lanes, enforcer.measure(lanes))
    await enforcer.apply(kube, violations)

    assert [v.pod for v in violations] == ["greedy"]
    assert stats.violations() == {("team", "greedy", "lane-1", policy.value): 1}
    assert kube.events[0].reason == REASON_OVER_LANE and "1500 MiB" in kube.events[0].message
    if policy is EnforcementPolicy.EVICT:
        assert kube.evicted == ["team/greedy"]
        assert kube.events[1].reason == REASON_EVICTED
    else:
        assert kube.evicted == []
        assert "team/greedy" in kube.pods
    # the next tick does not act again on the same excursion
    lanes = pod_lanes(await kube.list_node_pods(NODE), NODE)
    assert enforcer.decide(lanes, enforcer.measure(lanes)) == ()
