"""Install CustomResourceDefinitions from YAML files and wait until the apiserver serves them.

A CRD is usable only once its `Established` condition is True; creating objects before that fails
with a 404. The repo's `crds/` directory is the source of truth, so tests and the dev cluster apply
exactly those files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException


class CrdError(ValueError):
    """A CRD file or object that cannot be installed; the message names the file and the reason."""


def load_crds(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in `paths` (other kinds are an error)."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise CrdError(f"{path}: not valid YAML ({exc})") from exc
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
                raise CrdError(f"{path}: holds a {kind!r}, expected only CustomResourceDefinition documents")
            if not doc.get("metadata", {}).get("name"):
                raise CrdError(f"{path}: a CustomResourceDefinition without metadata.name")
            docs.append(doc)
    return docs


def crd_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file()) + sorted(directory.glob("*.yml"))


def apply(api: client.ApiClient, docs: Sequence[dict[str, Any]]) -> list[str]:
    """Create each CRD, or replace it when it exists (keeping its resourceVersion); return names."""
    ext = client.ApiextensionsV1Api(api)
    names: list[str] = []
    for doc in docs:
        name = doc["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(cast(Any, doc))
        except ApiException as exc:
            if exc.status != 409:
                raise CrdError(f"CRD {name}: rejected by the apiserver: {server_message(exc)}") from exc
            current = ext.read_custom_resource_definition(name)
            version = current.metadata.resource_version if current.metadata else None
            body = dict(doc)
            body["metadata"] = dict(doc["metadata"], resourceVersion=version)
            ext.replace_custom_resource_definition(name, cast(Any, body))
        names.append(name)
    return names


def server_message(exc: ApiException) -> str:
    """The apiserver's own message from an error response (the Status body), else the raw body."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.body or exc.reason)
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def wait_established(api: client.ApiClient, names: Sequence[str], *, timeout: float = 30.0) -> float:
    """Wait until every named CRD is Established and its names accepted; return seconds waited."""
    ext = client.ApiextensionsV1Api(api)
    started = time.monotonic()
    pending = list(names)
    last: dict[str, list[str]] = {}
    while pending:
        still: list[str] = []
        for name in pending:
            status = ext.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            state = {c.type: c.status for c in conditions}
            last[name] = [f"{c.type}={c.status} ({c.reason}: {c.message})" for c in conditions]
            if not (state.get("Established") == "True" and state.get("NamesAccepted") == "True"):
                still.append(name)
        pending = still
        if pending and time.monotonic() - started > timeout:
            detail = "; ".join(f"{n}: {last.get(n)}" for n in pending)
            raise TimeoutError(f"CRDs not established after {timeout:.0f}s: {detail}")
        if pending:
            time.sleep(0.1)
    return time.monotonic() - started


def install_directory(api: client.ApiClient, directory: Path, *, timeout: float = 30.0) -> list[str]:
    """Apply every CRD file in `directory` and wait until established; return the CRD names."""
    names = apply(api, load_crds(crd_files(directory)))
    wait_established(api, names, timeout=timeout)
    return names


PEERING_CRD = "clusterkopfpeerings.kopf.dev"


def ensure_cluster_peering(api: client.ApiClient, name: str) -> bool:
    """Create the ClusterKopfPeering a peered operator needs (kopf pauses it while it is missing).

    Returns True when it was created, False when it already existed. What the chart's peering.yaml does."""
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        client.CustomObjectsApi(api).create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise CrdError(f"ClusterKopfPeering {name}: rejected by the apiserver: {server_message(exc)}") from exc
    return True
