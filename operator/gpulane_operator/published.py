"""Which GPUs a DRA claim may be allocated: the devices of the gpu.gpulane.dev ResourceSlices (pure).

A node's agent publishes one slice with a device per healthy GPU, attribute ``uuid`` (docs/dra.md).
Only such a device can be prepared by a kubelet: before the agent has published, the operator may know
the node's GPUs from its labels alone (synthetic UUIDs, ``inventory.py``), and a DRA job placed on one
would be evicted once the agent's GPUNode replaces them. So DRA jobs are placed only on GPUs whose UUID
a slice publishes, and wait, saying so, while none is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpulane_operator.selectors import DOMAIN, DRIVER


@dataclass(frozen=True, slots=True)
class SliceRecord:
    name: str
    node: str
    uuids: frozenset[str]  # the GPUs its devices stand for; empty for another driver's slice


def parse_slice(body: Mapping[str, Any]) -> SliceRecord:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    uuids: set[str] = set()
    if spec.get("driver") == DRIVER:
        for device in spec.get("devices") or ():
            value = (((device.get("attributes") or {}).get("uuid") or {}).get("string")
                     or (((device.get("attributes") or {}).get(f"{DOMAIN}/uuid") or {}).get("string")))  # fmt: skip
            if isinstance(value, str) and value:
                uuids.add(value)
    return SliceRecord(str(meta.get("name", "")), str(spec.get("nodeName") or ""), frozenset(uuids))


def published_uuids(slices: Iterable[SliceRecord]) -> frozenset[str]:
    return frozenset(uuid for s in slices for uuid in s.uuids)


def waiting_message(eligible: int) -> str:
    return (f"waiting for a {DRIVER} ResourceSlice to publish one of the {eligible} GPU(s) this DRA job may use "
            "(the node agent publishes its node's slice once the kubelet has registered its DRA plugin)")  # fmt: skip
