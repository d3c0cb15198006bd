"""What a peered replica waits for, read from its kopf peering object (pure; the watch lives in handlers).

kopf with a peering name pauses this replica silently while its (Cluster)KopfPeering is missing, while a
live peer has a higher priority, and while a live peer shares its priority (kopf then pauses all of
them). An operator that waits must say what it waits for, so the startup handler reads the same object
kopf reads and logs the reason below.
"""

from __future__ import annotations

import datetime
import getpass
import random
import socket
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpulane_operator.crd import parse_time

CLUSTER_KIND = "ClusterKopfPeering"
NAMESPACED_KIND = "KopfPeering"
DEFAULT_LIFETIME_S = 60  # kopf's settings.peering.lifetime


@dataclass(frozen=True, slots=True)
class PeeringTarget:
    """One peering object this replica takes part in (one per watched namespace, or the cluster one)."""

    name: str
    namespace: str | None  # None: the ClusterKopfPeering
    identity: str
    priority: int

    @property
    def kind(self) -> str:
        return CLUSTER_KIND if self.namespace is None else NAMESPACED_KIND

    def describe(self) -> str:
        return f"{self.kind} {self.name!r}" + (f" in namespace {self.namespace!r}" if self.namespace else "")


@dataclass(frozen=True, slots=True)
class Waiting:
    key: str  # stable while the cause is the same (the message carries changing times)
    message: str
    expected: bool = False  # a standby behind an active peer: how HA is meant to look, not a fault


@dataclass(frozen=True, slots=True)
class Peer:
    identity: str
    priority: int
    deadline_s: float  # lastseen + lifetime: after this the peer counts as dead


def operator_identity(env: Mapping[str, str]) -> str:
    """kopf's own rule: POD_ID when set (the chart sets the pod name), else user@host/time/random."""
    pod = env.get("POD_ID")
    if pod:
        return pod
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    rnd = "".join(random.choices(string.ascii_lowercase + string.digits, k=3))
    return f"{getpass.getuser()}@{socket.gethostname()}/{now}/{rnd}"


def targets(name: str, namespaces: tuple[str, ...], identity: str, priority: int) -> list[PeeringTarget]:
    if not namespaces:
        return [PeeringTarget(name, None, identity, priority)]
    return [PeeringTarget(name, ns, identity, priority) for ns in namespaces]


def parse_peers(body: Mapping[str, Any]) -> list[Peer]:
    """The peers kopf keeps in the object's status: identity -> {priority, lastseen, lifetime}."""
    out = []
    for identity, info in (body.get("status") or {}).items():
        if not isinstance(info, Mapping):
            continue
        try:
            lastseen = parse_time(info.get("lastseen"))
            lifetime = float(info.get("lifetime", DEFAULT_LIFETIME_S))
            priority = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue  # kopf itself treats an unreadable entry as alive now; we only explain, never act on it
        if not lastseen:
            continue
        out.append(Peer(str(identity), priority, lastseen + lifetime))
    return out


def waiting_for(
    target: PeeringTarget, body: Mapping[str, Any] | None, error: str | None, now_s: float
) -> Waiting | None:
    """Why kopf keeps this replica paused, or None when the peering object lets it schedule."""
    what = target.describe()
    if body is None:
        return Waiting(
            f"missing {what}",
            f"waiting for {what} to exist ({error or 'not found'}): kopf pauses a peered operator until it does; "
            f"the chart and `gpulane dev-cluster up` create it, or run with --standalone",
        )
    live = [p for p in parse_peers(body) if p.identity != target.identity and p.deadline_s > now_s]
    higher = sorted((p for p in live if p.priority > target.priority), key=lambda p: -p.priority)
    if higher:
        p = higher[0]
        return Waiting(
            f"standby {what} {p.identity}",
            f"standing by: peer {p.identity!r} (priority {p.priority}) is active in {what}; this replica "
            f"(priority {target.priority}) takes over if that peer stops renewing its entry (it expires in "
            f"{p.deadline_s - now_s:.0f}s unless renewed)",
            expected=True,
        )
    same = sorted((p for p in live if p.priority == target.priority), key=lambda p: p.deadline_s)
    if same:
        ids = ", ".join(repr(p.identity) for p in same)
        return Waiting(
            f"paused {what} {ids}",
            f"paused: {ids} share this replica's priority {target.priority} in {what}, and kopf pauses every "
            f"replica of equal priority until one is left; a dead peer's entry expires in "
            f"{same[-1].deadline_s - now_s:.0f}s (give replicas distinct priorities, or run one)",
        )
    return None
