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
    assert charge_units(joined, 256, {joined.first.plan.growth_mib // 256}) == joined.first.plan.growth_mib // 256 + 1
    tiny = Job(JobId("ns/c"), 0, 1)
    assert charge_units(next(state.candidates(tiny, NODE.name)), 256, set()) == 1  # never zero


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
