"""PodResources client: one ``List`` call over the kubelet's pod-resources socket.

A fresh channel per call: the kubelet recreates its socket on restart, and the chart mounts the
directory (not the socket file) so a new socket is simply dialled next time (kubelet docs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from gpulane_agent.podresources._proto import api_pb2, api_pb2_grpc


class PodResourcesError(RuntimeError):
    """The kubelet's PodResources endpoint did not answer."""


async def list_pod_resources(socket: Path, timeout_s: float = 5.0) -> list[Any]:
    """``List`` -> the ``pod_resources`` entries (protobuf messages)."""
    try:
        async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
            stub = api_pb2_grpc.PodResourcesListerStub(channel)  # type: ignore[no-untyped-call]
            response = await stub.List(api_pb2.ListPodResourcesRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        raise PodResourcesError(f"PodResources List on {socket} failed: {exc.code().name} {exc.details()}") from exc
    return list(response.pod_resources)
