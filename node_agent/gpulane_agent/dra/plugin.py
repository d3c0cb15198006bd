"""NodePrepareResources / NodeUnprepareResources: read each claim, decide (``claims``), write CDI (``cdi``).

``DraDriver`` works on plain values and is what both served API versions call; ``DRAPluginV1`` and
``DRAPluginV1beta1`` only translate protobufs. Every claim gets its own outcome: one bad claim is an
``error`` string for that claim (naming it and the reason), never an RPC failure for the others. The
kubelet calls Prepare again for claims whose outcome is missing or failed, so both calls are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpulane_agent.dra import cdi, claims
from gpulane_agent.dra._proto import dra_v1_pb2, dra_v1beta1_pb2
from gpulane_agent.dra.api import DraKube
from gpulane_agent.gpu.backend import GpuBackend
from gpulane_agent.kube.api import KubeError

log = logging.getLogger(__name__)

# Kubernetes UIDs are RFC 4122 UUIDs; anything else would also be unsafe in a file name.
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class ClaimRef:
    namespace: str
    uid: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name} (uid {self.uid})"


@dataclass(frozen=True, slots=True)
class PreparedDevice:
    request_names: tuple[str, ...]
    pool: str
    device: str
    cdi_ids: tuple[str, ...]
    share_id: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    devices: tuple[PreparedDevice, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class DriverContext:
    node_name: str
    cdi_dir: Path
    coordinator_socket: str
    fake_gpu_dir: str = ""


def prepared_devices(grant: claims.ClaimGrant) -> tuple[PreparedDevice, ...]:
    """One entry per allocated device; the claim's single CDI device goes on the first result of each
    request, so a container that uses the whole claim is not handed the same CDI device twice per request."""
    seen: set[str] = set()
    out = []
    for r in grant.results:
        ids = () if r.request in seen else (cdi.device_id(grant.claim_uid),)
        seen.add(r.request)
        out.append(PreparedDevice((r.request,), r.pool, r.device, ids, r.share_id))
    return tuple(out)


class DraDriver:
    def __init__(self, ctx: DriverContext, backend: GpuBackend, kube: Callable[[], DraKube | None]) -> None:
        self._ctx = ctx
        self._backend = backend
        self._kube = kube
        self._lock = asyncio.Lock()  # prepare and unprepare of one claim must not interleave

    async def prepare(self, refs: Iterable[ClaimRef]) -> dict[str, Outcome]:
        async with self._lock:
            return {ref.uid: await self._prepare_one(ref) for ref in refs}

    async def unprepare(self, refs: Iterable[ClaimRef]) -> dict[str, Outcome]:
        async with self._lock:
            return {ref.uid: self._unprepare_one(ref) for ref in refs}

    async def _prepare_one(self, ref: ClaimRef) -> Outcome:
        try:
            view, grant = await self._decide(ref)
            notes = cdi.spec_annotations(view, grant.results)
            cdi.write_spec(self._ctx.cdi_dir, ref.uid, cdi.spec(ref.uid, grant.grant, notes))
        except claims.PrepareRefused as exc:
            log.warning("NodePrepareResources refused: %s", exc)
            return Outcome(error=str(exc))
        except KubeError as exc:
            log.warning("NodePrepareResources: claim %s: API server: %s", ref.key, exc)
            return Outcome(error=f"claim {ref.key}: cannot read it from the API server: {exc}")
        except OSError as exc:
            log.warning("NodePrepareResources: claim %s: CDI spec: %s", ref.key, exc)
            return Outcome(error=f"claim {ref.key}: cannot write its CDI spec in {self._ctx.cdi_dir}: {exc}")
        log.info("prepared claim %s: %s", ref.key, ", ".join(r.device for r in grant.results))
        return Outcome(devices=prepared_devices(grant))

    async def _decide(self, ref: ClaimRef) -> tuple[claims.ClaimView, claims.ClaimGrant]:
        if not _UID.match(ref.uid):
            raise claims.PrepareRefused(f"claim {ref.key}: the uid is not a Kubernetes UID")
        kube = self._kube()
        if kube is None:
            raise KubeError("the agent has not connected to the API server yet")
        obj = await kube.get_claim(ref.namespace, ref.name)
        if obj is None:
            raise claims.PrepareRefused(f"claim {ref.key}: no such ResourceClaim")
        view = claims.claim_view(obj)
        if view.uid != ref.uid:
            raise claims.PrepareRefused(
                f"claim {ref.key}: the ResourceClaim of that name has uid {view.uid} (it was replaced)"
            )
        return view, claims.claim_grant(
            view, self._ctx.node_name, self._backend.gpus(), self._ctx.coordinator_socket, self._ctx.fake_gpu_dir
        )

    def _unprepare_one(self, ref: ClaimRef) -> Outcome:
        if not _UID.match(ref.uid):
            return Outcome(error=f"claim {ref.key}: the uid is not a Kubernetes UID")
        try:
            removed = cdi.remove_spec(self._ctx.cdi_dir, ref.uid)
        except OSError as exc:
            return Outcome(error=f"claim {ref.key}: cannot remove its CDI spec from {self._ctx.cdi_dir}: {exc}")
        log.info("unprepared claim %s%s", ref.key, "" if removed else " (it had no CDI spec)")
        return Outcome()


def _refs(claims_pb: Sequence[Any]) -> list[ClaimRef]:
    return [ClaimRef(c.namespace, c.uid, c.name) for c in claims_pb]


class DRAPluginV1:  # served with dra_v1_pb2_grpc.add_DRAPluginServicer_to_server
    def __init__(self, driver: DraDriver) -> None:
        self._driver = driver

    async def NodePrepareResources(
        self, request: dra_v1_pb2.NodePrepareResourcesRequest, context: Any
    ) -> dra_v1_pb2.NodePrepareResourcesResponse:
        outcomes = await self._driver.prepare(_refs(request.claims))
        response = dra_v1_pb2.NodePrepareResourcesResponse()
        for uid, o in outcomes.items():
            devices = [
                dra_v1_pb2.Device(
                    request_names=list(d.request_names), pool_name=d.pool, device_name=d.device,
                    cdi_device_ids=list(d.cdi_ids), share_id=d.share_id or None,
                )
                for d in o.devices
            ]  # fmt: skip
            response.claims[uid].CopyFrom(dra_v1_pb2.NodePrepareResourceResponse(devices=devices, error=o.error))
        return response

    async def NodeUnprepareResources(
        self, request: dra_v1_pb2.NodeUnprepareResourcesRequest, context: Any
    ) -> dra_v1_pb2.NodeUnprepareResourcesResponse:
        outcomes = await self._driver.unprepare(_refs(request.claims))
        response = dra_v1_pb2.NodeUnprepareResourcesResponse()
        for uid, o in outcomes.items():
            response.claims[uid].CopyFrom(dra_v1_pb2.NodeUnprepareResourceResponse(error=o.error))
        return response


class DRAPluginV1beta1:  # served with dra_v1beta1_pb2_grpc.add_DRAPluginServicer_to_server
    """The deprecated v1beta1 service, for kubelets that ask for it; it has no share_id field."""

    def __init__(self, driver: DraDriver) -> None:
        self._driver = driver

    async def NodePrepareResources(
        self, request: dra_v1beta1_pb2.NodePrepareResourcesRequest, context: Any
    ) -> dra_v1beta1_pb2.NodePrepareResourcesResponse:
        outcomes = await self._driver.prepare(_refs(request.claims))
        response = dra_v1beta1_pb2.NodePrepareResourcesResponse()
        for uid, o in outcomes.items():
            devices = [
                dra_v1beta1_pb2.Device(
                    request_names=list(d.request_names), pool_name=d.pool, device_name=d.device,
                    cdi_device_ids=list(d.cdi_ids),
                )
                for d in o.devices
            ]  # fmt: skip
            response.claims[uid].CopyFrom(dra_v1beta1_pb2.NodePrepareResourceResponse(devices=devices, error=o.error))
        return response

    async def NodeUnprepareResources(
        self, request: dra_v1beta1_pb2.NodeUnprepareResourcesRequest, context: Any
    ) -> dra_v1beta1_pb2.NodeUnprepareResourcesResponse:
        outcomes = await self._driver.unprepare(_refs(request.claims))
        response = dra_v1beta1_pb2.NodeUnprepareResourcesResponse()
        for uid, o in outcomes.items():
            response.claims[uid].CopyFrom(dra_v1beta1_pb2.NodeUnprepareResourceResponse(error=o.error))
        return response
