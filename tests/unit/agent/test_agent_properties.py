"""Properties of the agent's pure decisions over generated inputs (hypothesis)."""

from __future__ import annotations

import string

from agent_testkit import NODE, assigned_pod
from gpulane_agent.deviceplugin.allocate import AllocateRefused, find_pod
from gpulane_agent.deviceplugin.units import device_id, preferred_allocation, split_device_id
from gpulane_agent.settings import SettingsError, load_config
from gpulane_core import podcontract as ann
from hypothesis import given, settings
from hypothesis import strategies as st

GPUS = ["GPU-a", "GPU-b", "GPU-c", "GPU-d"]

available_ids = st.lists(
    st.tuples(st.sampled_from(GPUS), st.integers(0, 40)).map(lambda t: device_id(*t)), unique=True, max_size=80
)


@settings(max_examples=300, deadline=None)
@given(available=available_ids, size=st.integers(1, 50), preferred=st.sampled_from([None, *GPUS]),
       n_must=st.integers(0, 3))
def test_preferred_allocation_is_a_valid_choice(available: list[str], size: int, preferred: str | None,
                                                n_must: int) -> None:
    must = available[:n_must]
    chosen = preferred_allocation(available, must, size, preferred)
    assert len(chosen) == len(set(chosen)) == min(size, len(available))
    assert set(chosen) <= set(available)
    assert chosen[: min(size, len(must))] == must[:size]
    if not must:
        per_gpu = {g: sum(1 for d in available if split_device_id(d)[0] == g) for g in GPUS}
        gpus_used = {split_device_id(d)[0] for d in chosen}
        if preferred is not None and per_gpu[preferred] > 0:
            # as much as possible on the assigned GPU keeps the kubelet's per-GPU counts closest to the truth
            take = min(size, per_gpu[preferred])
            assert {split_device_id(d)[0] for d in chosen[:take]} == {preferred}
            if per_gpu[preferred] >= size:
                assert gpus_used == {preferred}
            elif any(c >= size - take for g, c in per_gpu.items() if g != preferred):
                assert len({split_device_id(d)[0] for d in chosen[take:]}) == 1  # the rest packed on one GPU
        elif any(count >= size for count in per_gpu.values()):
            assert len(gpus_used) == 1


@settings(max_examples=200, deadline=None)
@given(charges=st.lists(st.tuples(st.integers(1, 6), st.booleans()), max_size=6), units=st.integers(1, 6))
def test_find_pod_returns_only_an_unambiguous_unallocated_match(charges: list[tuple[int, bool]], units: int) -> None:
    pods = [assigned_pod(f"p{i}", charge_units=c, allocated=a) for i, (c, a) in enumerate(charges)]
    waiting = [p for p in pods if p.annotations.get(ann.ALLOCATED) != "true"
               and p.annotations[ann.CHARGE_UNITS] == str(units)]
    try:
        pod = find_pod(pods, NODE, units, "gpulane.dev/gpu-memory")
    except AllocateRefused as exc:
        assert len(waiting) != 1
        assert str(exc)
    else:
        assert waiting == [pod]


@settings(max_examples=200, deadline=None)
@given(env=st.dictionaries(
    st.sampled_from(["GPULANE_AGENT_METRICS_PORT", "GPULANE_AGENT_BACKEND_KIND", "GPULANE_AGENT_ENFORCEMENT_INTERVAL_S",
                     "GPULANE_AGENT_DEVICE_PLUGIN_MEMORY_UNIT_MIB", "GPULANE_AGENT_BACKEND_FAIL_ON_INIT"]),
    st.text(string.printable, max_size=8)))
def test_any_env_value_either_loads_or_fails_with_a_config_error(env: dict[str, str]) -> None:
    try:
        load_config(None, env, {"node_name": "n"})
    except SettingsError as exc:
        assert ":" in str(exc)  # "<field>: <reason>"
