"""Grouping plans for pipelined transmission: shapes, the cost model, and model-aware optimality."""

from __future__ import annotations

import pytest
from gpulane_client.grouping import Grouping, Layer, LinkModel, pipeline_time, plan_groups
from hypothesis import given
from hypothesis import strategies as st

LINK = LinkModel(bytes_per_s=1e9, per_copy_s=1e-3)  # 1 GB/s, 1 ms per copy: easy arithmetic


def _layers(*spec: tuple[int, float]) -> list[Layer]:
    return [Layer(f"l{i}", b, c) for i, (b, c) in enumerate(spec)]


def test_per_layer_and_whole() -> None:
    layers = _layers((10, 0.1), (20, 0.1), (30, 0.1))
    assert plan_groups(layers, Grouping.PER_LAYER, link=LINK).groups == ((0,), (1,), (2,))
    whole = plan_groups(layers, Grouping.WHOLE, link=LINK)
    assert whole.groups == ((0, 1, 2),) and whole.group_bytes == (60,)


def test_fixed_groups_respect_the_target_size() -> None:
    layers = _layers((4, 0), (4, 0), (4, 0), (9, 0), (1, 0))
    plan = plan_groups(layers, Grouping.FIXED, link=LINK, fixed_group_bytes=8)
    assert plan.groups == ((0, 1), (2,), (3,), (4,))  # an oversized layer gets its own group


def test_pipeline_time_overlaps_copy_and_compute() -> None:
    # Two layers of 1 MB (1 ms + 1 ms overhead each), 5 ms compute each.
    layers = _layers((1_000_000, 0.005), (1_000_000, 0.005))
    assert pipeline_time([[0], [1]], layers, LINK) == pytest.approx(0.002 + 0.005 + 0.005)
    assert pipeline_time([[0, 1]], layers, LINK) == pytest.approx(0.003 + 0.010)


def test_model_aware_keeps_the_first_group_small_and_packs_later_layers() -> None:
    # A small stem, then big blocks whose copies hide under the earlier compute.
    layers = _layers((1_000_000, 0.010), *[(2_000_000, 0.004)] * 8)
    plan = plan_groups(layers, Grouping.MODEL_AWARE, link=LINK)
    assert plan.groups[0] == (0,)
    assert len(plan.groups) < len(layers)
    per_layer = plan_groups(layers, Grouping.PER_LAYER, link=LINK)
    whole = plan_groups(layers, Grouping.WHOLE, link=LINK)
    assert plan.estimated_s <= per_layer.estimated_s
    assert plan.estimated_s < whole.estimated_s


def test_model_aware_merges_tiny_layers_to_amortize_copy_overhead() -> None:
    layers = _layers(*[(1_000, 0.0)] * 50)  # 50 copies of 1 KB: overhead dominates, no compute to hide it
    plan = plan_groups(layers, Grouping.MODEL_AWARE, link=LINK)
    assert len(plan.groups) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": []}, "layers: a plan needs at least one layer"),
        ({"layers": [Layer("x", -1)]}, "layers\\[0\\].nbytes"),
        ({"layers": [Layer("x", 1, -1.0)]}, "layers\\[0\\].compute_s"),
        ({"layers": [Layer("x", 1)], "fixed_group_bytes": 0}, "fixed_group_bytes"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_groups(**kwargs)  # type: ignore[arg-type]


def test_link_model_validates() -> None:
    with pytest.raises(ValueError, match="bytes_per_s"):
        LinkModel(bytes_per_s=0)


layer_lists = st.lists(
    st.builds(Layer, st.just("l"), st.integers(0, 50_000_000), st.floats(0, 0.02, allow_nan=False)), min_size=1, max_size=40
)


@given(layer_lists, st.sampled_from(list(Grouping)))
def test_every_plan_is_a_contiguous_partition(layers: list[Layer], grouping: Grouping) -> None:
    plan = plan_groups(layers, grouping, link=LINK)
    flat = [i for group in plan.groups for i in group]
    assert flat == list(range(len(layers)))
    assert all(group for group in plan.groups)
    assert sum(plan.group_bytes) == sum(layer.nbytes for layer in layers)
    # Lower bounds: everything must be copied once, and all compute must run.
    assert plan.estimated_s >= sum(layer.nbytes for layer in layers) / LINK.bytes_per_s - 1e-12
    assert plan.estimated_s >= sum(layer.compute_s for layer in layers) - 1e-12


@given(layer_lists)
def test_model_aware_is_never_worse_than_per_layer_or_fixed(layers: list[Layer]) -> None:
    aware = plan_groups(layers, Grouping.MODEL_AWARE, link=LINK).estimated_s
    assert aware <= plan_groups(layers, Grouping.PER_LAYER, link=LINK).estimated_s + 1e-12
    assert aware <= plan_groups(layers, Grouping.FIXED, link=LINK).estimated_s + 1e-12
