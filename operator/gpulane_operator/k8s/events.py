"""Kubernetes Events on GPUShareJobs: what ``kubectl describe gsj`` shows. Best effort by design:
a failed Event must never fail a scheduling decision, so errors are logged and dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpulane_operator.k8s.api import ApiError, KubeApi
from gpulane_operator.names import API_VERSION, KIND

COMPONENT = "gpulane-operator"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobRef:
    namespace: str
    name: str
    uid: str


def event_body(ref: JobRef, reason: str, message: str, warning: bool, now_s: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(now_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def post(api: KubeApi, ref: JobRef, reason: str, message: str, now_s: float, *, warning: bool = False) -> None:
    try:
        await api.create_event(ref.namespace, event_body(ref, reason, message, warning, now_s))
    except ApiError as exc:
        log.warning("event %s on %s/%s not posted: %s", reason, ref.namespace, ref.name, exc)
