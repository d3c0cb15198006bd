"""Optional PyTorch integration: pipelined prefetch of a model onto the GPU, offload, memory limit.

PipeSwitch-style: a model's layers are split into transfer groups (:mod:`gpulane_client.grouping`);
on a prefetch signal every group is copied host-to-device on a side CUDA stream, one event per group,
and a forward-pre-hook on each layer makes the compute stream wait only for *its* group, so compute of
group k starts as soon as group k has landed. On offload the tensors go back to pinned host memory
(pinned so the next copy runs at full bandwidth and asynchronously).

torch is imported lazily (only :func:`pipeline` and :func:`apply_memory_limit` need it). The group
bookkeeping (:class:`PipelinedSwapper`) talks to a :class:`Mover` port, so its hook ordering is tested
with duck-typed fakes where torch is not installed.

Scope: parameters and buffers move; gradients and optimizer state are the caller's (call
``optimizer.zero_grad(set_to_none=True)`` before an offload to free gradients).
"""

from __future__ import annotations

import enum
import importlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gpulane_client.grouping import Grouping, GroupPlan, Layer, LinkModel, plan_groups
from gpulane_client.lane import Lane

ENV_MEMORY_LIMIT = "GPULANE_MEMORY_LIMIT_MIB"


def memory_fraction(limit_mib: int, total_bytes: int) -> float:
    """The share of a GPU's memory a lane's limit allows (for ``set_per_process_memory_fraction``)."""
    if limit_mib <= 0:
        raise ValueError(f"{ENV_MEMORY_LIMIT}: must be a positive number of MiB, got {limit_mib}")
    if total_bytes <= 0:
        raise ValueError(f"total_bytes: must be positive, got {total_bytes}")
    return min(1.0, limit_mib * (1 << 20) / total_bytes)


def _torch() -> Any:
    return importlib.import_module("torch")


def apply_memory_limit(env: Mapping[str, str] | None = None, device: int = 0) -> float | None:
    """Cap this process's CUDA caching allocator at the lane's limit; None when no limit is set."""
    env = os.environ if env is None else env
    raw = env.get(ENV_MEMORY_LIMIT, "").strip()
    if not raw:
        return None
    try:
        limit = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_MEMORY_LIMIT}: must be an integer number of MiB, got {raw!r}") from None
    torch = _torch()
    fraction = memory_fraction(limit, torch.cuda.get_device_properties(device).total_memory)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction


class Mover(Protocol):
    """Moves one transfer group's tensors; the torch implementation is :class:`CudaMover`."""

    def copy_in(self, group: int) -> None:
        """Enqueue the group's host-to-device copy (asynchronous) and mark its completion."""

    def wait_in(self, group: int) -> None:
        """Make the compute stream wait for the group's copy (the CPU does not block)."""

    def copy_out(self, group: int) -> None:
        """Copy the group back to pinned host memory and release its GPU storage."""

    def transfer_seconds(self) -> float | None:
        """Duration of the last full prefetch, once it has completed (None if unknown)."""


class HookableModule(Protocol):
    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> Any: ...


class Where(enum.Enum):
    HOST = "host"
    IN_FLIGHT = "in-flight"
    RESIDENT = "resident"


class PipelinedSwapper:
    """Where each group is, and the hooks that make compute wait only for the group it needs."""

    def __init__(
        self, group_modules: Sequence[Sequence[HookableModule]], mover: Mover, *, resident: bool, lane: Lane | None = None
    ) -> None:
        self._mover = mover
        self._lane = lane
        self._lock = threading.Lock()  # hooks run on the training thread, signals on the client's reader
        self._where = [Where.RESIDENT if resident else Where.HOST for _ in group_modules]
        self._handles = [m.register_forward_pre_hook(self._hook(k)) for k, mods in enumerate(group_modules) for m in mods]
        if lane is not None:
            lane.on_prefetch(lambda _event: self.prefetch())
            lane.on_evict(lambda _event: self.offload())

    @property
    def where(self) -> tuple[Where, ...]:
        return tuple(self._where)

    def prefetch(self) -> None:
        """Start copying every group not on the GPU, in execution order (returns at once)."""
        with self._lock:
            for k, where in enumerate(self._where):
                if where is Where.HOST:
                    self._mover.copy_in(k)
                    self._where[k] = Where.IN_FLIGHT

    def offload(self) -> None:
        """Move every group back to pinned host memory; report the last prefetch's duration to the lane."""
        with self._lock:
            seconds = self._mover.transfer_seconds()
            if seconds is not None and self._lane is not None:
                self._lane.note_transfer(seconds)
            for k, where in enumerate(self._where):
                if where is not Where.HOST:
                    if where is Where.IN_FLIGHT:
                        self._mover.wait_in(k)
                    self._mover.copy_out(k)
                    self._where[k] = Where.HOST

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, k: int) -> Callable[..., None]:
        def hook(_module: object, _inputs: object) -> None:
            with self._lock:
                if self._where[k] is Where.HOST:  # nobody prefetched: fetch on demand
                    self._mover.copy_in(k)
                    self._where[k] = Where.IN_FLIGHT
                if self._where[k] is Where.IN_FLIGHT:
                    self._mover.wait_in(k)
                    self._where[k] = Where.RESIDENT

        return hook


class CudaMover:
    """Copies groups on a side CUDA stream with one event per group (PipeSwitch's pipeline)."""

    def __init__(self, groups: Sequence[Sequence[Any]], device: Any) -> None:
        torch = _torch()
        self._torch = torch
        self._device = torch.device(device)
        self._groups = [list(g) for g in groups]
        self._stream = torch.cuda.Stream(device=self._device)
        self._events: list[Any] = [None] * len(self._groups)
        self._host: list[list[Any]] = [[None] * len(g) for g in self._groups]
        self._started: Any = None
        self._finished: Any = None
        for k, group in enumerate(self._groups):
            for i, tensor in enumerate(group):
                if tensor.device.type == "cpu":
                    self._host[k][i] = tensor.data.pin_memory()
                    tensor.data = self._host[k][i]

    def copy_in(self, group: int) -> None:
        torch = self._torch
        last = group == len(self._groups) - 1
        with torch.cuda.stream(self._stream):
            if group == 0:  # a full prefetch starts: time it from here to the last group
                self._started = torch.cuda.Event(enable_timing=True)
                self._started.record(self._stream)
                self._finished = None
            for i, tensor in enumerate(self._groups[group]):
                host = self._host[group][i]
                if host is not None:  # None: this tensor never left the GPU
                    tensor.data = host.to(self._device, non_blocking=True)
            event = torch.cuda.Event(enable_timing=last)
            event.record(self._stream)
        self._events[group] = event
        if last and self._started is not None:
            self._finished = event

    def wait_in(self, group: int) -> None:
        self._torch.cuda.current_stream(self._device).wait_event(self._events[group])

    def copy_out(self, group: int) -> None:
        torch = self._torch
        # The copy must start after this job's queued kernels have finished with the tensors.
        self._stream.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(self._stream):
            for i, tensor in enumerate(self._groups[group]):
                gpu = tensor.data
                host = self._host[group][i]
                if host is None or host.shape != gpu.shape or host.dtype != gpu.dtype:
                    host = self._host[group][i] = torch.empty(gpu.shape, dtype=gpu.dtype, device="cpu", pin_memory=True)
                host.copy_(gpu, non_blocking=True)
                gpu.record_stream(self._stream)  # the allocator must not reuse it before the copy ran
                tensor.data = host
        self._stream.synchronize()  # host copies are complete before anyone may read them

    def transfer_seconds(self) -> float | None:
        if self._started is None or self._finished is None or not self._finished.query():
            return None
        seconds: float = self._started.elapsed_time(self._finished) / 1000.0
        self._started = self._finished = None  # report each prefetch once
        return seconds


def model_layers(model: Any, forward_s: float = 0.0) -> tuple[list[Layer], list[Any], list[list[Any]]]:
    """Modules that own parameters or buffers, in registration order, as :class:`Layer` records.

    Compute per layer is estimated as ``forward_s`` split by parameter bytes (a proxy for conv/linear
    work); with ``forward_s`` 0 the plan only amortizes copy overhead.
    """
    modules: list[Any] = []
    tensors: list[list[Any]] = []
    for _name, module in model.named_modules():
        own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        if own:
            modules.append(module)
            tensors.append(own)
    sizes = [sum(t.numel() * t.element_size() for t in own) for own in tensors]
    total = sum(sizes) or 1
    layers = [Layer(type(m).__name__, size, forward_s * size / total) for m, size in zip(modules, sizes, strict=True)]
    return layers, modules, tensors


def pipeline(
    model: Any,
    *,
    lane: Lane | None = None,
    grouping: Grouping = Grouping.MODEL_AWARE,
    device: Any = "cuda",
    link: LinkModel | None = None,
    forward_s: float = 0.0,
    fixed_group_bytes: int = 16 << 20,
) -> tuple[PipelinedSwapper, GroupPlan]:
    """Make ``model`` swappable: prefetch on the lane's signal, offload when another job takes over."""
    layers, modules, tensors = model_layers(model, forward_s)
    plan = plan_groups(layers, grouping, link=link, fixed_group_bytes=fixed_group_bytes)
    group_tensors = [[t for i in group for t in tensors[i]] for group in plan.groups]
    resident = all(t.device.type != "cpu" for own in tensors for t in own)
    mover = CudaMover(group_tensors, device)
    swapper = PipelinedSwapper([[modules[i] for i in group] for group in plan.groups], mover, resident=resident, lane=lane)
    return swapper, plan
