"""Count kube-apiserver requests by verb and resource from the apiserver's own ``/metrics``.

``apiserver_request_total`` is counted by the apiserver itself, so nothing a client does (retries,
kopf's own patches, event posting) escapes it. It has no client label: :func:`attribute` sorts rows by
who in a gpulane test cluster makes such requests (the operator, the benchmark client, kwok), which is
exact for writes and only approximate for LIST/WATCH (every client watches). Long-running requests
(WATCH) are counted when they end, so a watch still open at the second scrape is not in the delta.
"""

from __future__ import annotations

import re
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from gpulane_dev.controlplane import ControlPlane

METRIC = "apiserver_request_total"
_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

OPERATOR = "operator"
BENCH = "bench client"
KWOK = "kwok"
WATCHES = "list/watch (all clients)"
OTHER = "other (apiserver, kwok)"


@dataclass(frozen=True, slots=True, order=True)
class RequestKey:
    verb: str
    resource: str  # "group/resource", or just "resource" for the core group
    subresource: str = ""

    def describe(self) -> str:
        return f"{self.verb} {self.resource}" + (f"/{self.subresource}" if self.subresource else "")


def parse(text: str) -> dict[RequestKey, float]:
    """Request counts from a Prometheus text page, summed over codes, scopes and versions.
    Non-resource requests (``/metrics``, ``/healthz``: no resource label) are left out."""
    out: dict[RequestKey, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        resource = labels.get("resource", "")
        if not resource:
            continue
        group = labels.get("group", "")
        key = RequestKey(labels.get("verb", ""), f"{group}/{resource}" if group else resource,
                         labels.get("subresource", ""))  # fmt: skip
        out[key] = out.get(key, 0.0) + float(match.group("value"))
    return out


def delta(before: Mapping[RequestKey, float], after: Mapping[RequestKey, float]) -> dict[RequestKey, float]:
    """Requests made between two scrapes (rows that did not change are dropped)."""
    out = {key: after[key] - before.get(key, 0.0) for key in after}
    return {key: n for key, n in out.items() if n > 0}


def attribute(key: RequestKey) -> str:
    """Who makes this kind of request in a benchmark cluster (operator, bench client, kwok)."""
    if key.verb in ("LIST", "WATCH"):
        return WATCHES
    if key.resource == "gpulane.dev/gpusharejobs" and key.verb == "POST":
        return BENCH  # the benchmark creates the jobs; the operator never does
    if key.resource == "gpulane.dev/gpusharejobs" or key.resource == "events":
        return OPERATOR  # status patches, kopf's finalizer/annotation patches, and Events on jobs
    if key.resource == "events.k8s.io/events":
        return OPERATOR
    if key.resource == "pods":
        # kwok writes pod status; the operator creates, binds, reads and deletes pods.
        return KWOK if key.subresource == "status" else OPERATOR
    if key.resource in ("nodes", "coordination.k8s.io/leases"):
        return KWOK
    return OTHER


def scrape(plane: ControlPlane) -> dict[RequestKey, float]:
    """The apiserver's request counters now, read with the admin client certificate."""
    creds = plane.credentials
    context = ssl.create_default_context(cafile=str(creds.ca_cert))
    context.load_cert_chain(str(creds.client_cert), str(creds.client_key))
    with urllib.request.urlopen(f"{plane.server}/metrics", context=context, timeout=30) as response:
        return parse(response.read().decode())


def by_owner(counts: Mapping[RequestKey, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, n in counts.items():
        owner = attribute(key)
        out[owner] = out.get(owner, 0.0) + n
    return out
