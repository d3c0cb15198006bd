"""Grouping plans for pipelined model transmission (PipeSwitch), as pure functions over layer sizes.

A model's layers go to the GPU in groups; compute of group k may start once group k has landed, so
transfer of later groups hides under compute of earlier ones. Copies have a fixed cost each (launch,
synchronisation), so one copy per layer pays that cost many times, while one big copy hides nothing.

The cost model (``pipeline_time``): group k lands at T_k = T_{k-1} + overhead + bytes_k / bandwidth;
its compute starts at max(T_k, end of group k-1's compute). ``MODEL_AWARE`` follows PipeSwitch's two
insights: keep the first group small (compute waits for all of it), then grow a group while its copy
still lands before compute reaches it; it returns the best plan under the model among that greedy plan,
per-layer and a range of fixed sizes, so it is never worse than those under the same model.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Grouping(enum.Enum):
    PER_LAYER = "per-layer"
    FIXED = "fixed"  # groups of about ``fixed_group_bytes``
    MODEL_AWARE = "model-aware"
    WHOLE = "whole"  # one copy, no pipelining (the baseline)


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    nbytes: int
    compute_s: float = 0.0  # forward compute estimate; zeros mean "unknown"


@dataclass(frozen=True, slots=True)
class LinkModel:
    bytes_per_s: float = 12e9  # host-to-device bandwidth (pinned memory)
    per_copy_s: float = 20e-6  # fixed cost of one group copy

    def __post_init__(self) -> None:
        if self.bytes_per_s <= 0:
            raise ValueError(f"bytes_per_s: must be positive, got {self.bytes_per_s}")
        if self.per_copy_s < 0:
            raise ValueError(f"per_copy_s: must not be negative, got {self.per_copy_s}")


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """Contiguous groups of layer indices, in execution order."""

    grouping: Grouping
    groups: tuple[tuple[int, ...], ...]
    group_bytes: tuple[int, ...]
    estimated_s: float  # pipeline time under the link model (transfer + compute, overlapped)


def pipeline_time(groups: Sequence[Sequence[int]], layers: Sequence[Layer], link: LinkModel) -> float:
    landed = 0.0
    computed = 0.0
    for group in groups:
        landed += link.per_copy_s + sum(layers[i].nbytes for i in group) / link.bytes_per_s
        computed = max(computed, landed) + sum(layers[i].compute_s for i in group)
    return computed


def _validate(layers: Sequence[Layer]) -> None:
    if not layers:
        raise ValueError("layers: a plan needs at least one layer")
    for i, layer in enumerate(layers):
        if layer.nbytes < 0:
            raise ValueError(f"layers[{i}].nbytes: must not be negative, got {layer.nbytes}")
        if layer.compute_s < 0:
            raise ValueError(f"layers[{i}].compute_s: must not be negative, got {layer.compute_s}")


def _fixed(layers: Sequence[Layer], target: int) -> list[list[int]]:
    groups: list[list[int]] = [[]]
    size = 0
    for i, layer in enumerate(layers):
        if groups[-1] and size + layer.nbytes > target:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += layer.nbytes
    return groups


def _greedy(layers: Sequence[Layer], link: LinkModel) -> list[list[int]]:
    # A copy smaller than this costs more in overhead than in bytes: always worth merging.
    amortize = link.per_copy_s * link.bytes_per_s
    groups: list[list[int]] = []
    landed = computed = 0.0
    i = 0
    while i < len(layers):
        group = [i]
        size = layers[i].nbytes
        j = i + 1
        while j < len(layers):
            grown = landed + link.per_copy_s + (size + layers[j].nbytes) / link.bytes_per_s
            hidden = groups and grown <= computed  # still lands before compute reaches this group
            if not (hidden or size < amortize):
                break
            group.append(j)
            size += layers[j].nbytes
            j += 1
        landed += link.per_copy_s + size / link.bytes_per_s
        computed = max(computed, landed) + sum(layers[k].compute_s for k in group)
        groups.append(group)
        i = j
    return groups


def plan_groups(
    layers: Sequence[Layer],
    grouping: Grouping = Grouping.MODEL_AWARE,
    *,
    link: LinkModel | None = None,
    fixed_group_bytes: int = 16 << 20,
) -> GroupPlan:
    """Split ``layers`` (in execution order) into transfer groups."""
    _validate(layers)
    link = link or LinkModel()
    if fixed_group_bytes <= 0:
        raise ValueError(f"fixed_group_bytes: must be positive, got {fixed_group_bytes}")
    candidates: list[list[list[int]]]
    if grouping is Grouping.PER_LAYER:
        candidates = [[[i] for i in range(len(layers))]]
    elif grouping is Grouping.WHOLE:
        candidates = [[list(range(len(layers)))]]
    elif grouping is Grouping.FIXED:
        candidates = [_fixed(layers, fixed_group_bytes)]
    else:
        total = sum(layer.nbytes for layer in layers)
        sizes = {max(1, total >> shift) for shift in range(1, 9)} | {fixed_group_bytes}
        candidates = [_greedy(layers, link), [[i] for i in range(len(layers))]]
        candidates += [_fixed(layers, size) for size in sorted(sizes)]
    # Fastest under the model, then fewest groups, then the earliest candidate.
    estimated_s, _, best = min((pipeline_time(c, layers, link), len(c), k) for k, c in enumerate(candidates))
    groups = tuple(tuple(g) for g in candidates[best])
    return GroupPlan(grouping, groups, tuple(sum(layers[i].nbytes for i in g) for g in groups), estimated_s)
