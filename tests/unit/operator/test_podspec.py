from __future__ import annotations

from gpulane_core.cluster import ClusterState
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_operator.assignment import from_placement
from gpulane_operator.crd import parse_job
from gpulane_operator.podspec import build_pod, charge_units, same_assignment
from opfakes import job_body

NODE = Node(NodeName("n1"), (Gpu(0, "GPU-0", "T4", 16384),))


def test_charges_follow_the_contract_and_stay_unique() -> None:
    state = ClusterState.of([NODE])
    opener = Job(JobId("ns/a"), 1024, 4096)
    first = next(state.candidates(opener, NODE.name))
    assert charge_units(first, 256, set()) == 20  # persistent + lane size
    state = state.reserve(opener, first)
    sharer = Job(JobId("ns/b"), 512, 2048)
    joined = next(state.candidates(sharer, NODE.name))
    assert joined.first.plan.growth_mib in (512, 512 + 2048)
    need = joined.first.plan.growth_mib // 256
    assert charge_units(joined, 256, {need}) == need - 1  # moved down: a full node never overflows
    # Never up: k distinct counts above the growth would hold k(k+1)/2 units of the kubelet's for the pods'
    # lives. Nothing free below means wait for the device plugin to allocate some pods in flight.
    assert charge_units(joined, 256, set(range(1, need + 1))) is None
    assert charge_units(joined, 256, set(), room=3) == 3  # nor past the units the kubelet has left
    assert charge_units(joined, 256, {1}, room=1) is None
    tiny = Job(JobId("ns/c"), 0, 1)
    assert charge_units(next(state.candidates(tiny, NODE.name)), 256, set()) == 1  # never zero


def test_charges_of_a_full_node_never_exceed_its_units() -> None:
    """8 jobs of 1Gi + 6Gi fill 2 x 16Gi exactly; unique charges must still fit the 128 units."""
    node = Node(NodeName("n1"), (Gpu(0, "GPU-0", "T4", 16384), Gpu(1, "GPU-1", "T4", 16384)))
    state = ClusterState.of([node])
    taken: set[int] = set()
    for i in range(8):
        job = Job(JobId(f"ns/j{i}"), 1024, 6144)
        placement = next(state.candidates(job, node.name))
        units = charge_units(placement, 256, taken)
        assert units is not None
        taken.add(units)
        state = state.reserve(job, placement)
    assert len(taken) == 8 and sum(taken) <= 2 * 16384 // 256


def test_pod_has_scheduler_owner_annotations_and_resource() -> None:
    rec = parse_job(job_body("a", "1Gi", "4Gi"))
    assert rec.job is not None
    placement = next(ClusterState.of([NODE]).candidates(rec.job, NODE.name))
    a = from_placement(rec.job, placement, 20)
    pod = build_pod(rec, a)
    assert pod["metadata"]["name"] == "a-gpulane"
    assert pod["metadata"]["labels"] == {"team": "a", "app.kubernetes.io/managed-by": "gpulane", "gpulane.dev/job": "a"}
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-a"
    assert pod["spec"]["schedulerName"] == "gpulane" and pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"gpulane.dev/gpu-memory": "20"}
    assert same_assignment(pod["metadata"]["annotations"], a)
    assert rec.template["spec"]["containers"][0].get("resources") is None  # the job's template is untouched
