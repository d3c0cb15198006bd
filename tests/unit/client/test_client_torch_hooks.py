"""The PyTorch integration's bookkeeping, with duck-typed fakes (torch is not needed):
hook ordering for pipelined prefetch, demand fetch, offload, lane signals, and the memory limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gpulane_client.torch import PipelinedSwapper, Where, apply_memory_limit, memory_fraction


class FakeMover:
    def __init__(self, log: list[str], seconds: float | None = None) -> None:
        self.log = log
        self.seconds = seconds

    def copy_in(self, group: int) -> None:
        self.log.append(f"in{group}")

    def wait_in(self, group: int) -> None:
        self.log.append(f"wait{group}")

    def copy_out(self, group: int) -> None:
        self.log.append(f"out{group}")

    def transfer_seconds(self) -> float | None:
        return self.seconds


class FakeHandle:
    def __init__(self, hooks: list[Any], hook: Any) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        self.hooks.remove(self.hook)


class FakeModule:
    """Calls its pre-hooks, then records that it computed (like nn.Module.__call__)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.hooks: list[Callable[[Any, Any], None]] = []

    def register_forward_pre_hook(self, hook: Callable[[Any, Any], None]) -> FakeHandle:
        self.hooks.append(hook)
        return FakeHandle(self.hooks, hook)

    def __call__(self) -> None:
        for hook in list(self.hooks):
            hook(self, ())
        self.log.append(f"run:{self.name}")


class FakeLane:
    def __init__(self) -> None:
        self.prefetch: list[Callable[[Any], None]] = []
        self.evict: list[Callable[[Any], None]] = []
        self.transfers: list[float] = []

    def on_prefetch(self, hook: Callable[[Any], None]) -> None:
        self.prefetch.append(hook)

    def on_evict(self, hook: Callable[[Any], None]) -> None:
        self.evict.append(hook)

    def note_transfer(self, seconds: float, *, blocking: bool = False) -> None:
        self.transfers.append(seconds)


def _model(log: list[str]) -> tuple[list[list[FakeModule]], list[FakeModule]]:
    groups = [[FakeModule("stem", log)], [FakeModule("b1", log), FakeModule("b2", log)], [FakeModule("head", log)]]
    return groups, [m for g in groups for m in g]


def test_prefetch_copies_every_group_up_front_and_compute_waits_only_for_its_own_group() -> None:
    log: list[str] = []
    groups, modules = _model(log)
    swapper = PipelinedSwapper(groups, FakeMover(log), resident=False)
    swapper.prefetch()
    assert log == ["in0", "in1", "in2"]  # all copies enqueued at once, in execution order
    assert swapper.where == (Where.IN_FLIGHT,) * 3
    for module in modules:
        module()
    # Group k's wait comes right before its first layer runs, not before the whole model landed;
    # the second layer of group 1 does not wait again.
    assert log[3:] == ["wait0", "run:stem", "wait1", "run:b1", "run:b2", "wait2", "run:head"]
    assert swapper.where == (Where.RESIDENT,) * 3


def test_without_a_prefetch_each_group_is_fetched_on_demand() -> None:
    log: list[str] = []
    groups, modules = _model(log)
    PipelinedSwapper(groups, FakeMover(log), resident=False)
    for module in modules:
        module()
    assert log == ["in0", "wait0", "run:stem", "in1", "wait1", "run:b1", "run:b2", "in2", "wait2", "run:head"]


def test_resident_model_runs_without_copies_and_a_second_prefetch_is_a_no_op() -> None:
    log: list[str] = []
    groups, modules = _model(log)
    swapper = PipelinedSwapper(groups, FakeMover(log), resident=True)
    swapper.prefetch()
    for module in modules:
        module()
    assert log == ["run:stem", "run:b1", "run:b2", "run:head"]


def test_offload_waits_for_in_flight_copies_then_copies_out() -> None:
    log: list[str] = []
    groups, modules = _model(log)
    swapper = PipelinedSwapper(groups, FakeMover(log), resident=False)
    swapper.prefetch()
    modules[0]()
    log.clear()
    swapper.offload()
    assert log == ["out0", "wait1", "out1", "wait2", "out2"]
    assert swapper.where == (Where.HOST,) * 3


def test_lane_signals_drive_prefetch_and_offload_and_report_transfer_time() -> None:
    log: list[str] = []
    groups, _modules = _model(log)
    lane = FakeLane()
    swapper = PipelinedSwapper(groups, FakeMover(log, seconds=0.012), resident=True, lane=lane)  # type: ignore[arg-type]
    lane.evict[0](object())  # another job holds the lane
    assert swapper.where == (Where.HOST,) * 3 and lane.transfers == [0.012]
    lane.prefetch[0](object())  # this job is next
    assert swapper.where == (Where.IN_FLIGHT,) * 3
    assert log == ["out0", "out1", "out2", "in0", "in1", "in2"]


def test_remove_detaches_every_hook() -> None:
    log: list[str] = []
    groups, modules = _model(log)
    swapper = PipelinedSwapper(groups, FakeMover(log), resident=False)
    swapper.remove()
    assert all(not m.hooks for m in modules)


def test_memory_fraction() -> None:
    assert memory_fraction(8192, 16 << 30) == pytest.approx(0.5)
    assert memory_fraction(32768, 16 << 30) == 1.0  # never above the whole GPU
    with pytest.raises(ValueError, match="GPULANE_MEMORY_LIMIT_MIB: must be a positive"):
        memory_fraction(0, 16 << 30)
    with pytest.raises(ValueError, match="total_bytes"):
        memory_fraction(1, 0)


def test_memory_limit_is_skipped_without_the_variable_and_validated_before_torch_loads() -> None:
    assert apply_memory_limit({}) is None
    with pytest.raises(ValueError, match="GPULANE_MEMORY_LIMIT_MIB: must be an integer number of MiB, got '8G'"):
        apply_memory_limit({"GPULANE_MEMORY_LIMIT_MIB": "8G"})
