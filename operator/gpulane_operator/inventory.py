"""Which GPUs exist: GPUNode objects published by node agents, with Node labels as a fallback.

A Node without a GPUNode may still describe its GPUs with the GPU feature discovery labels
``nvidia.com/gpu.count`` and ``nvidia.com/gpu.memory`` (MiB per GPU), optionally ``nvidia.com/gpu.product``.
Such GPUs get synthetic UUIDs (``GPU-<node>-<index>``); this is meant for clusters or tests without
the agent, where no device plugin hands out ``gpulane.dev/gpu-memory``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpulane_core.model import Gpu, Node, NodeName
from gpulane_core.podcontract import RESOURCE

from gpulane_operator.crd import parse_time

LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_MEMORY = "nvidia.com/gpu.memory"
LABEL_PRODUCT = "nvidia.com/gpu.product"
DEFAULT_UNIT_MIB = 256


@dataclass(frozen=True, slots=True)
class GpuNodeFacts:
    name: str
    gpus: tuple[Gpu, ...]
    memory_unit_mib: int
    unschedulable: bool


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    ready: bool
    unschedulable: bool
    label_gpus: tuple[Gpu, ...]
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    not_ready_since: float | None = None  # epoch s of the Ready condition's last transition, when not Ready
    device_units: int | None = None  # allocatable gpulane.dev/gpu-memory: what the kubelet lets pods request


class SelectorError(ValueError):
    """A node selector that cannot be parsed."""


def parse_selector(text: str) -> dict[str, str | None]:
    """``k=v,k2`` (equality or existence) to {key: value or None}; empty selects every node."""
    out: dict[str, str | None] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not key.strip():
            raise SelectorError(f"node selector {text!r}: empty key in {part!r}")
        out[key.strip()] = value.strip() if eq else None
    return out


def selected(labels: Mapping[str, str], selector: Mapping[str, str | None]) -> bool:
    return all(k in labels and (v is None or labels[k] == v) for k, v in selector.items())


@dataclass(frozen=True, slots=True)
class NodeInventory:
    node: Node
    memory_unit_mib: int
    schedulable: bool  # False: keep counting its lanes, place nothing new there
    source: str  # "gpunode" or "labels"
    not_ready_since: float | None = None  # epoch s; None while Ready (or when the API gives no time)
    device_units: int | None = None  # the kubelet's allocatable units; None: no device plugin has said yet


def parse_gpunode(body: Mapping[str, Any]) -> GpuNodeFacts:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    gpus = tuple(
        sorted(
            (
                Gpu(
                    index=int(g["index"]),
                    uuid=str(g["uuid"]),
                    model=str(g.get("model", "")),
                    memory_mib=int(g["memoryMiB"]),
                    healthy=g.get("health", "Healthy") == "Healthy",
                )
                for g in status.get("gpus") or ()
                if "index" in g and "uuid" in g and "memoryMiB" in g
            ),
            key=lambda g: g.index,
        )
    )
    return GpuNodeFacts(
        name=str(meta.get("name", "")),
        gpus=gpus,
        memory_unit_mib=int(status.get("memoryUnitMiB") or DEFAULT_UNIT_MIB),
        unschedulable=bool((body.get("spec") or {}).get("unschedulable", False)),
    )


def parse_node(body: Mapping[str, Any]) -> NodeFacts:
    meta = body.get("metadata") or {}
    name = str(meta.get("name", ""))
    labels = meta.get("labels") or {}
    conditions = (body.get("status") or {}).get("conditions") or ()
    ready_condition = next((c for c in conditions if c.get("type") == "Ready"), None)
    ready = ready_condition is not None and ready_condition.get("status") == "True"
    # crd.parse_time gives 0.0 for a missing time: then the node is never lost by age, only by deletion.
    not_ready_since = None if ready or ready_condition is None else parse_time(ready_condition.get("lastTransitionTime")) or None
    try:
        device_units: int | None = int(((body.get("status") or {}).get("allocatable") or {})[RESOURCE])
    except (KeyError, TypeError, ValueError):
        device_units = None
    gpus: tuple[Gpu, ...] = ()
    try:
        count, memory = int(labels.get(LABEL_COUNT, 0)), int(labels.get(LABEL_MEMORY, 0))
    except ValueError:
        count, memory = 0, 0
    if count > 0 and memory > 0:
        model = str(labels.get(LABEL_PRODUCT, "unknown"))
        gpus = tuple(Gpu(i, f"GPU-{name}-{i}", model, memory) for i in range(count))
    return NodeFacts(
        name=name,
        ready=ready,
        unschedulable=bool((body.get("spec") or {}).get("unschedulable", False)),
        label_gpus=gpus,
        labels=dict(labels),
        not_ready_since=not_ready_since,
        device_units=device_units,
    )


def merge(
    gpunodes: Mapping[str, GpuNodeFacts],
    nodes: Mapping[str, NodeFacts],
    selector: Mapping[str, str | None] | None = None,
) -> dict[NodeName, NodeInventory]:
    """GPU nodes that exist now (and match the selector). A GPUNode whose Node is gone is not a node."""
    out: dict[NodeName, NodeInventory] = {}
    for name, facts in sorted(nodes.items()):
        if selector and not selected(facts.labels, selector):
            continue
        published = gpunodes.get(name)
        if published is not None and published.gpus:
            gpus, unit, source = published.gpus, published.memory_unit_mib, "gpunode"
            cordoned = published.unschedulable
        elif published is None and facts.label_gpus:  # a GPUNode without GPUs: its agent is not ready
            gpus, unit, source, cordoned = facts.label_gpus, DEFAULT_UNIT_MIB, "labels", False
        else:
            continue
        schedulable = facts.ready and not facts.unschedulable and not cordoned
        out[NodeName(name)] = NodeInventory(
            Node(NodeName(name), gpus), unit, schedulable, source, facts.not_ready_since, facts.device_units
        )
    return out
