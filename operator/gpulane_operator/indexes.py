"""kopf indexes: the operator's in-memory view of GPUShareJobs, gpulane pods, Nodes and GPUNodes.

Each index function only parses (pure functions of crd/assignment/inventory); :func:`views` turns
the live indexes into the plain mappings a cycle works on. kopf fills every index before any
handler runs, so the first cycle after a restart already sees every pod and its lane. The index
functions are coroutines although they never await: kopf runs a plain function in a worker thread,
a thread hop per watch event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import kopf
from gpulane_core.model import JobId, NodeName
from gpulane_core.podcontract import LABEL_JOB, MANAGED_BY, MANAGER

from gpulane_operator.assignment import PodRecord, parse_pod
from gpulane_operator.claims import ClaimRecord, parse_claim
from gpulane_operator.crd import JobRecord, parse_job
from gpulane_operator.inventory import (
    GpuNodeFacts,
    NodeFacts,
    NodeInventory,
    merge,
    parse_gpunode,
    parse_node,
)
from gpulane_operator.names import GPUNODES, GROUP, PLURAL, VERSION
from gpulane_operator.published import SliceRecord, parse_slice
from gpulane_operator.views import Views

T = TypeVar("T")


@kopf.index(GROUP, VERSION, PLURAL)
async def gsj_index(body: kopf.Body, **_: Any) -> dict[JobId, JobRecord]:
    rec = parse_job(body)
    return {rec.id: rec}


@kopf.index("", "v1", "pods", labels={MANAGED_BY: MANAGER, LABEL_JOB: kopf.PRESENT})
async def pod_index(body: kopf.Body, **_: Any) -> dict[JobId, PodRecord]:
    pod = parse_pod(body)
    return {} if pod is None else {pod.job: pod}


@kopf.index("", "v1", "nodes")
async def node_index(body: kopf.Body, **_: Any) -> dict[str, NodeFacts]:
    facts = parse_node(body)
    return {facts.name: facts}


@kopf.index(GROUP, VERSION, GPUNODES)
async def gpunode_index(body: kopf.Body, **_: Any) -> dict[str, GpuNodeFacts]:
    facts = parse_gpunode(body)
    return {facts.name: facts}


@kopf.index("resource.k8s.io", "v1", "resourceclaims")
async def claim_index(body: kopf.Body, **_: Any) -> dict[str, ClaimRecord]:
    """Every claim: ours are deleted with their pods, others of gpu.gpulane.dev count in the lanes."""
    claim = parse_claim(body)
    return {f"{claim.namespace}/{claim.name}": claim}


@kopf.index("resource.k8s.io", "v1", "resourceslices")
async def slice_index(body: kopf.Body, **_: Any) -> dict[str, SliceRecord]:
    """Every slice (other drivers' parse to no GPUs): what DRA jobs may be allocated (published.py)."""
    record = parse_slice(body)
    return {record.name: record}


def _one(stores: Mapping[Any, Iterable[T]]) -> dict[Any, T]:
    """An index maps each key to a store of values; ours have one object per key (names are unique)."""
    out: dict[Any, T] = {}
    for key, store in list(stores.items()):
        for value in store:
            out[key] = value
    return out


def lookup(kwargs: Mapping[str, Any], index: str, key: Any) -> Any:
    """One value of one index (the newest), or None; avoids copying a whole index per event."""
    store = kwargs[index].get(key)
    if store is None:
        return None
    values = list(store)
    return values[-1] if values else None


def jobs_of(kwargs: Mapping[str, Any]) -> dict[JobId, JobRecord]:
    return _one(kwargs["gsj_index"])


def node_inventory(kwargs: Mapping[str, Any], selector: Mapping[str, str | None], name: str) -> NodeInventory | None:
    """One node's GPU inventory (all that one Node or GPUNode event can change), or None when it has
    none (gone, not selected, no GPUs): a heartbeat is told apart without merging every node."""
    node = lookup(kwargs, "node_index", name)
    if node is None:
        return None
    gpunode = lookup(kwargs, "gpunode_index", name)
    return merge({} if gpunode is None else {name: gpunode}, {name: node}, selector).get(NodeName(name))


def views(
    kwargs: Mapping[str, Any],
    selector: Mapping[str, str | None],
    inventory: Mapping[NodeName, NodeInventory] | None = None,
) -> Views:
    """Views from a handler's kwargs (kopf passes each index under its function's name); ``inventory``
    when the caller has already merged it."""
    nodes = _one(kwargs["node_index"])
    if inventory is None:
        inventory = merge(_one(kwargs["gpunode_index"]), nodes, selector)
    return Views(
        jobs=_one(kwargs["gsj_index"]),
        pods=_one(kwargs["pod_index"]),
        inventory=inventory,
        nodes=frozenset(nodes),  # keys with objects (a key may keep an empty store)
        claims=_one(kwargs["claim_index"]) if "claim_index" in kwargs else {},
        slices=_one(kwargs["slice_index"]) if "slice_index" in kwargs else {},
    )
