"""FGD fragmentation math, checked against hand-computed cases written from the definitions."""

from __future__ import annotations

import pytest
from gpulane_core.fragmentation.fgd import fgd_score, sigmoid
from gpulane_core.fragmentation.frag import (
    FragClass,
    FragModel,
    classify,
    cluster_frag,
    frag_ratio,
    node_frag,
    node_pod_frag,
    typical_pods,
)
from gpulane_core.fragmentation.types import NodeState, PodShape, TypicalPod, validate_pod_shape

# A T4 node with 8 cores left, one whole GPU free and one GPU with 300 milli left: L = 1300.
NODE = NodeState("n1", "T4", cpu_milli_left=8000, memory_mib_left=1 << 20, gpu_milli_left=(1000, 300))


@pytest.mark.parametrize(
    ("pod", "klass", "frag"),
    [
        (PodShape(2000, 1, 500), FragClass.Q3_SATISFIED, 300),  # fits on GPU0; GPU1 (300) too small
        (PodShape(2000, 1, 200), FragClass.Q3_SATISFIED, 0),  # both GPUs can serve it
        (PodShape(10000, 1, 500), FragClass.Q4_LACK_CPU, 1300),  # GPU fits, CPU does not
        (PodShape(2000, 2, 1000), FragClass.Q2_LACK_GPU, 1300),  # only one whole GPU free
        (PodShape(10000, 2, 1000), FragClass.Q1_LACK_BOTH, 1300),
        (PodShape(1000), FragClass.XL_SATISFIED, 1300),  # CPU-only pods can use no GPU
        (PodShape(9000), FragClass.XR_LACK_CPU, 1300),
        (PodShape(2000, 1, 500, ("V100M16", "V100M32")), FragClass.NO_ACCESS, 1300),
        (PodShape(2000, 1, 500, ("T4",)), FragClass.Q3_SATISFIED, 300),
    ],
)
def test_quadrants_and_fragment_per_typical_pod(pod: PodShape, klass: FragClass, frag: int) -> None:
    assert classify(NODE, pod) is klass
    assert node_pod_frag(NODE, pod) == frag


def test_node_fragmentation_is_the_popularity_weighted_sum() -> None:
    typical = (
        TypicalPod(PodShape(2000, 1, 500), 0.5),  # 300
        TypicalPod(PodShape(2000, 1, 200), 0.25),  # 0
        TypicalPod(PodShape(1000), 0.25),  # 1300
    )
    assert node_frag(NODE, typical) == pytest.approx(0.5 * 300 + 0.25 * 1300)
    assert FragModel(typical).node(NODE) == pytest.approx(475.0)
    full = NodeState("n2", "T4", 8000, 0, (0, 0))
    assert cluster_frag([NODE, full], typical) == pytest.approx(475.0)
    assert frag_ratio([NODE, full], typical) == pytest.approx(475.0 / 1300)
    assert frag_ratio([full], typical) == 0.0


def test_fully_used_node_has_no_fragment() -> None:
    typical = (TypicalPod(PodShape(1000), 1.0),)
    assert node_frag(NodeState("n", "G2", 0, 0, (0,) * 8), typical) == 0.0


def test_sigmoid_and_fgd_score() -> None:
    assert sigmoid(0.0) == 0.5
    assert sigmoid(-800.0) == pytest.approx(0.0)
    assert fgd_score(0) == 50
    assert fgd_score(1000) == 73  # floor(100 * 0.7311)
    assert fgd_score(-1000) == 26  # floor(100 * 0.2689)
    assert fgd_score(-200) == 45  # floor(100 * 0.4502)
    assert fgd_score(5000) == 99
    assert fgd_score(-10**6) == 0


def test_typical_pods_keep_the_most_popular_until_the_threshold() -> None:
    a, b = PodShape(4000, 1, 1000), PodShape(2000, 1, 500)
    c, d = PodShape(8000), PodShape(1000)
    pods = [a, a, a, b, b, c, d]  # 7 pods
    # 95% of 7 = 6.65: every shape is needed (3, 5, 6 < 6.65, then 7)
    assert [t.shape for t in typical_pods(pods, 0.95)] == [a, b, c, d]
    # 80% = 5.6: a, b (5) then one of the two single shapes; the larger (c, 8 cores) comes first
    kept = typical_pods(pods, 0.80)
    assert [t.shape for t in kept] == [a, b, c]
    assert [t.popularity for t in kept] == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    assert sum(t.popularity for t in kept) == pytest.approx(1.0)


def test_typical_pods_group_by_demand_not_memory_and_can_leave_cpu_pods_out() -> None:
    pods = [PodShape(1000, 1, 500, memory_mib=10), PodShape(1000, 1, 500, memory_mib=99), PodShape(3000)]
    kept = typical_pods(pods, 0.95)
    assert kept[0] == TypicalPod(PodShape(1000, 1, 500), 2 / 3)
    assert [t.shape for t in typical_pods(pods, 0.95, include_cpu_pods=False)] == [PodShape(1000, 1, 500)]
    assert typical_pods([], 0.95) == ()
    with pytest.raises(ValueError, match="threshold"):
        typical_pods(pods, 0.0)
    with pytest.raises(ValueError, match="step"):
        typical_pods(pods, 0.9, step=0)


def test_typical_pods_step_adds_several_shapes_at_once() -> None:
    pods = [PodShape(1000 * i) for i in range(1, 5) for _ in range(5 - i)]  # counts 4, 3, 2, 1
    assert len(typical_pods(pods, 0.3, step=1)) == 1  # 4/10 >= 30%
    assert len(typical_pods(pods, 0.3, step=2)) == 2


def test_frag_model_memo_sees_cpu_only_through_thresholds() -> None:
    typical = (TypicalPod(PodShape(4000, 1, 500), 1.0),)
    model = FragModel(typical)
    assert model.frag("T4", 5000, (1000, 300)) == 300
    assert model.frag("T4", 4000, (300, 1000)) == 300  # same class, GPU order irrelevant
    assert model.frag("T4", 3999, (1000, 300)) == 1300  # below the threshold: Q4


def test_place_updates_free_resources_and_affinities() -> None:
    share = PodShape(1000, 1, 200, memory_mib=100)
    after = NODE.place(share, (1,))
    assert after.gpu_milli_left == (1000, 100)
    assert (after.cpu_milli_left, after.memory_mib_left) == (7000, NODE.memory_mib_left - 100)
    assert after.affinities == (("share-gpu", 1),)
    whole = after.place(PodShape(1000, 1, 1000), (0,))
    assert whole.affinities == (("1-gpu", 1), ("share-gpu", 1))
    assert whole.gpu_milli_left_total == 100 and whole.fully_free_gpus == 0
    assert NODE.place(PodShape(500), ()).affinities == ()  # CPU-only pods carry no GPU affinity
    with pytest.raises(ValueError, match="cannot take"):
        NODE.place(PodShape(1000, 1, 400), (1,))  # 300 left < 400
    with pytest.raises(ValueError, match="distinct"):
        NODE.place(PodShape(1000, 2, 1000), (0, 0))
    with pytest.raises(ValueError, match="CPU/memory"):
        NODE.place(PodShape(9000), ())


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        (PodShape(-1), "cpu_milli"),
        (PodShape(1000, 1, 1200), "gpu_milli"),
        (PodShape(1000, 2, 500), "gpu_milli"),
        (PodShape(1000, 0, 300), "gpu_milli"),
        (PodShape(1000, -1, 0), "num_gpu"),
        (PodShape(1000, memory_mib=-5), "memory_mib"),
    ],
)
def test_malformed_pods_are_named_by_field(pod: PodShape, field: str) -> None:
    problems = validate_pod_shape(pod)
    assert problems and problems[0].startswith(f"{field}:")


def test_well_formed_pods_have_no_problems() -> None:
    assert validate_pod_shape(PodShape(1000, 8, 1000, ("G2",), 4096)) == []
    assert PodShape(1000, 1, 400).is_sharing and PodShape(1000, 1, 400).affinity == "share-gpu"
    assert PodShape(1000, 8, 1000).affinity == "8-gpu" and PodShape(1000).affinity == ""
