"""One placement surface: the FGD family runs as framework profiles, and profiles run in ``place``."""

from __future__ import annotations

from gpulane_core.cluster import ClusterState
from gpulane_core.fragmentation.bridge import ProfileScorer, lane_job, lane_node, milli_node, milli_pod
from gpulane_core.fragmentation.family import PolicyName, make_policy
from gpulane_core.fragmentation.frag import typical_pods
from gpulane_core.fragmentation.policy import EMPTY_CYCLE, schedule
from gpulane_core.fragmentation.types import NodeState, PodShape
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_core.registry import default_registry
from gpulane_core.scheduler import PendingJob, SchedulerConfig, schedule_cycle
from hypothesis import given, settings
from hypothesis import strategies as st

GPU_MIB = 1000  # one MiB is one milli-GPU: the two views agree exactly


def _cluster(used: list[list[int]]) -> tuple[ClusterState, list[Job]]:
    """Nodes n0, n1, ... with GPUs of 1000 MiB; ``used[n][g]`` MiB held by one resident job each."""
    nodes = [
        Node(NodeName(f"n{i}"), tuple(Gpu(g, f"n{i}-gpu{g}", "A100", GPU_MIB) for g in range(len(gpus))))
        for i, gpus in enumerate(used)
    ]
    state = ClusterState.of(nodes)
    placed: list[Job] = []
    for i, gpus in enumerate(used):
        for g, mib in enumerate(gpus):
            if mib:
                job = Job(JobId(f"r{i}-{g}"), mib, 0)
                option = next(o for o in state.candidates(job, NodeName(f"n{i}")) if o.first.index == g)
                state = state.reserve(job, option)
                placed.append(job)
    return state, placed


def _place(state: ClusterState, job: Job, placement: str) -> tuple[str, tuple[int, ...]] | None:
    config = SchedulerConfig(placement=placement, percentage_of_nodes_to_score=100)
    result = schedule_cycle(state, [PendingJob(job, 0.0)], config, 0.0)
    if not result.placements:
        return None
    p = result.placements[0]
    return p.node, tuple(c.index for c in p.gpus)


@settings(max_examples=80, deadline=None)
@given(
    used=st.lists(st.lists(st.sampled_from([0, 0, 250, 500, 750, 1000]), min_size=1, max_size=4), min_size=1, max_size=5),
    share=st.sampled_from([100, 250, 400, 500, 1000]),
    policy=st.sampled_from([p for p in PolicyName if p is not PolicyName.RANDOM]),
)
def test_family_as_profile_decides_like_its_own_cycle(used: list[list[int]], share: int, policy: PolicyName) -> None:
    state, placed = _cluster(used)
    job = Job(JobId("new"), share, 0)
    pod = milli_pod(job, GPU_MIB)
    typical = typical_pods([*(milli_pod(j, GPU_MIB) for j in placed), pod], threshold=1.0)
    native = schedule([milli_node(state.nodes[n]) for n in sorted(state.nodes)], pod, make_policy(policy, typical))
    lane = _place(state, job, policy.value)
    if native is None:
        assert lane is None
    else:
        assert lane == (native.node, native.gpus)


def test_views_translate_shares_both_ways() -> None:
    state, _ = _cluster([[250, 0, 1000]])
    node = milli_node(state.nodes[NodeName("n0")])
    assert node.gpu_milli_left == (750, 1000, 0) and node.model == "A100"
    assert milli_pod(Job(JobId("j"), 3000, 1000), 16_000) == PodShape(0, 1, 250)
    assert milli_pod(Job(JobId("j"), 30_000, 0), 16_000).gpu_milli == 1000  # at most one whole GPU
    assert milli_pod(Job(JobId("j"), 100, 0, gpus=2), 16_000) == PodShape(0, 2, 1000)
    back = lane_node(NodeState("m", "T4", 8000, 4096, (1000, 300)))
    assert [back.lanes[i].free_mib for i in (0, 1)] == [1000, 300]
    assert lane_job(PodShape(1000)) is None and lane_job(PodShape(0, 1, 300)) == Job(JobId("pod"), 300, 0)


def test_operator_profiles_run_as_place_scorers() -> None:
    registry = default_registry()
    nodes = [NodeState("a", "T4", 8000, 4096, (1000, 1000)), NodeState("b", "T4", 8000, 4096, (1000, 400))]
    pod = PodShape(500, 1, 300)
    binpack = registry.scorer("binpack", (), 0)
    assert isinstance(binpack, ProfileScorer)
    assert schedule(nodes, pod, binpack) is not None
    decision = schedule(nodes, pod, binpack)
    assert decision is not None and (decision.node, decision.gpus) == ("b", (1,))  # the fullest GPU that fits
    spread = schedule(nodes, pod, registry.scorer("spread", (), 0))
    assert spread is not None and spread.node == "a"
    assert binpack.pre_score(PodShape(100), nodes) == EMPTY_CYCLE  # CPU-only: no lane decision
    assert not isinstance(registry.scorer("fgd", (), 0), ProfileScorer)  # the family keeps its native scorer
