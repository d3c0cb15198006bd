"""Plain snapshots of kopf's indexes that a cycle works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gpulane_core.model import JobId, NodeName
from gpulane_core.podcontract import Assignment

from gpulane_operator.assignment import PodRecord
from gpulane_operator.claims import ClaimRecord, foreign_assignments
from gpulane_operator.crd import JobRecord
from gpulane_operator.inventory import NodeInventory
from gpulane_operator.published import SliceRecord, published_uuids


@dataclass(frozen=True, slots=True)
class Views:
    """Plain snapshots of kopf's indexes, taken at the start of a cycle."""

    jobs: Mapping[JobId, JobRecord]
    pods: Mapping[JobId, PodRecord]
    inventory: Mapping[NodeName, NodeInventory]
    nodes: frozenset[str] = frozenset()  # every Node object that exists, GPU or not
    claims: Mapping[str, ClaimRecord] = field(default_factory=dict)  # ResourceClaims by namespace/name
    slices: Mapping[str, SliceRecord] = field(default_factory=dict)  # ResourceSlices by name

    def published(self) -> frozenset[str]:
        """UUIDs of the GPUs gpu.gpulane.dev slices publish: the only ones a DRA claim may get."""
        return published_uuids(self.slices.values())

    def foreign(self) -> list[Assignment]:
        """Memory of gpu.gpulane.dev claims gpulane did not allocate: it counts in the lanes."""
        return foreign_assignments(self.claims.values(), self.inventory)
