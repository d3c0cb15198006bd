"""The DRA driver's API port: ResourceClaims read, the node's ResourceSlice written, as plain dicts.

``gpulane_agent.kube.client.AsyncDraKube`` implements it over HTTP (the only agent module that talks to
the API server); the objects stay the apiserver's ``resource.k8s.io/v1`` JSON, see there why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class DraKube(Protocol):
    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The ResourceClaim, or None when it does not exist."""
        ...

    async def get_slice(self, name: str) -> Mapping[str, Any] | None: ...

    async def create_slice(self, body: Mapping[str, Any]) -> None: ...

    async def replace_slice(self, name: str, body: Mapping[str, Any]) -> None:
        """Replace with ``metadata.resourceVersion`` from the body: a concurrent writer gets a 409."""
        ...

    async def delete_slice(self, name: str) -> None:
        """Delete; a slice that is already gone is not an error."""
        ...

    async def node_uid(self, name: str) -> str:
        """The Node's uid, "" when there is no such Node (then the slice gets no owner)."""
        ...
