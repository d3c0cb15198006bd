"""One node's inventory from kopf's index stores: what a Node or GPUNode event is compared by."""

from __future__ import annotations

from typing import Any

from gpulane_core.model import NodeName
from gpulane_operator import indexes
from gpulane_operator.inventory import merge, parse_node
from opfakes import node_body


def stores(*bodies: dict[str, Any]) -> dict[str, Any]:
    """kopf's kwargs: each index maps a key to a store of values."""
    nodes = {b["metadata"]["name"]: [parse_node(b)] for b in bodies}
    return {"node_index": nodes, "gpunode_index": {}}


def test_a_heartbeat_compares_equal_and_a_placement_relevant_change_does_not() -> None:
    before = indexes.node_inventory(stores(node_body("n1")), {}, "n1")
    assert before is not None and before == indexes.node_inventory(stores(node_body("n1")), {}, "n1")
    not_ready = indexes.node_inventory(stores(node_body("n1", ready=False)), {}, "n1")
    assert not_ready is not None and not_ready != before and not not_ready.schedulable
    assert indexes.node_inventory(stores(node_body("n1", gpus=4)), {}, "n1") != before


def test_a_node_gone_unselected_or_without_gpus_has_none() -> None:
    kwargs = stores(node_body("n1"), node_body("n2", gpus=0))
    assert indexes.node_inventory(kwargs, {}, "gone") is None
    assert indexes.node_inventory({**kwargs, "node_index": {"n1": []}}, {}, "n1") is None  # an emptied store
    assert indexes.node_inventory(kwargs, {"pool": "b"}, "n1") is None
    assert indexes.node_inventory(kwargs, {}, "n2") is None


def test_every_nodes_own_inventory_is_its_entry_in_the_whole_merge() -> None:
    bodies = [node_body("n1"), node_body("n2", ready=False), node_body("n3", gpus=0), node_body("n4", gpus=8)]
    kwargs = stores(*bodies)
    whole = merge({}, {b["metadata"]["name"]: parse_node(b) for b in bodies}, {"pool": "a"})
    each = {NodeName(n): indexes.node_inventory(kwargs, {"pool": "a"}, n) for n in ("n1", "n2", "n3", "n4")}
    assert {n: v for n, v in each.items() if v is not None} == whole
