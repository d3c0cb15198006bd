"""CDI specs for prepared claims: the pure document, and its file written and removed atomically.

One spec file per claim (``gpu.gpulane.dev-<claim uid>.json``) with one device named after the claim
uid, so preparing is idempotent (the same claim always writes the same bytes to the same path) and
unpreparing one claim never touches another's file. The container runtime (containerd >= 1.7 with CDI
on, CRI-O) reads every ``*.json`` in its CDI directories and applies the device's ``containerEdits`` to
each container that names ``gpu.gpulane.dev/gpu=<claim uid>``, which is the ID NodePrepareResources
returns.

The specs are also the record of which claims are prepared on this node, for the GPUNode: Prepare
writes one per claim and Unprepare deletes it, so listing ``dra.cdi_dir`` gives exactly the prepared
claims, and that survives an agent restart (the kubelet does not prepare a running pod's claims again).
Each spec carries annotations naming the claim and the memory its allocation consumed on each GPU (the
results' ``consumedCapacity.memory``, the figure the allocator accounted), so reading them back needs no
API call. A spec without them (written before they existed, or not ours) is skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpulane_agent.deviceplugin.allocate import ContainerGrant
from gpulane_agent.dra import claims
from gpulane_agent.dra.claims import DRIVER

log = logging.getLogger(__name__)

CDI_VERSION = "0.6.0"
CDI_KIND = f"{DRIVER}/gpu"


def device_id(claim_uid: str) -> str:
    """The fully qualified CDI device name the runtime resolves."""
    return f"{CDI_KIND}={claim_uid}"


def spec_name(claim_uid: str) -> str:
    return f"{DRIVER}-{claim_uid}.json"


def spec(claim_uid: str, grant: ContainerGrant, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CDI document: env as KEY=VALUE in a stable order, bind mounts with their access mode, and the
    ``annotations`` (CDI >= 0.6.0) that record the claim for the GPUNode (``read_prepared``)."""
    mounts = [
        {
            "hostPath": m.host_path,
            "containerPath": m.container_path,
            "options": ["rbind", "ro" if m.read_only else "rw"],
        }
        for m in grant.mounts
    ]
    env = [f"{k}={v}" for k, v in sorted(grant.envs.items())]
    document: dict[str, Any] = {
        "cdiVersion": CDI_VERSION,
        "kind": CDI_KIND,
        "devices": [{"name": claim_uid, "containerEdits": {"env": env, "mounts": mounts}}],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return document


def env_of(document: Mapping[str, Any]) -> dict[str, str]:
    """The env of a spec's single device, as a dict (for tests and for diagnosis)."""
    edits = document["devices"][0]["containerEdits"]
    return dict(item.split("=", 1) for item in edits.get("env", []))


def write_spec(cdi_dir: Path, claim_uid: str, document: Mapping[str, Any]) -> Path:
    """Write through a temporary file and rename, so a runtime never reads half a spec."""
    cdi_dir.mkdir(parents=True, exist_ok=True)
    path = cdi_dir / spec_name(claim_uid)
    tmp = path.with_name(f".{path.name}.tmp")  # a dotfile without .json: the runtime ignores it
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def remove_spec(cdi_dir: Path, claim_uid: str) -> bool:
    """Delete the claim's spec; True if it existed (a second unprepare finds nothing and is fine)."""
    try:
        (cdi_dir / spec_name(claim_uid)).unlink()
    except FileNotFoundError:
        return False
    with contextlib.suppress(FileNotFoundError):
        (cdi_dir / f".{spec_name(claim_uid)}.tmp").unlink()
    return True

CLAIM_KEY = f"{DRIVER}/claim"  # "<namespace>/<name>"
UID_KEY = f"{DRIVER}/claim-uid"
MEMORY_KEY = f"{DRIVER}/memory-mib"  # "<gpu index>=<MiB>,..."


@dataclass(frozen=True, slots=True)
class PreparedClaim:
    """One prepared claim's share of one GPU (a claim on two GPUs is two of these)."""

    namespace: str
    name: str
    uid: str
    gpu_index: int
    memory_mib: int


def spec_annotations(claim: claims.ClaimView, results: Iterable[claims.DeviceResult]) -> dict[str, str]:
    """The spec annotations for a claim being prepared (its results already validated by claim_grant)."""
    per_gpu = sorted((claims.gpu_index(r.device), claims.consumed_mib(claim, r)) for r in results)
    return {
        CLAIM_KEY: f"{claim.namespace}/{claim.name}",
        UID_KEY: claim.uid,
        MEMORY_KEY: ",".join(f"{index}={mib}" for index, mib in per_gpu),
    }


def from_spec(document: Mapping[str, Any]) -> tuple[PreparedClaim, ...]:
    """The claim's per-GPU entries from one CDI spec; () if it carries no (or malformed) annotations."""
    notes = document.get("annotations") or {}
    ref, uid, memory = (str(notes.get(k, "")) for k in (CLAIM_KEY, UID_KEY, MEMORY_KEY))
    namespace, _, name = ref.partition("/")
    if not (namespace and name and uid and memory):
        return ()
    out = []
    for part in memory.split(","):
        index, _, mib = part.partition("=")
        if not (index.isdigit() and mib.isdigit()):
            return ()
        out.append(PreparedClaim(namespace, name, uid, int(index), int(mib)))
    return tuple(out)


def read_prepared(cdi_dir: Path) -> tuple[PreparedClaim, ...]:
    """Every prepared claim in ``cdi_dir``, sorted; an unreadable spec is logged and skipped.

    A spec deleted between listing and reading (an unprepare racing the tick) is simply gone.
    """
    found: list[PreparedClaim] = []
    for path in sorted(cdi_dir.glob(f"{DRIVER}-*.json")):
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            log.warning("cannot read CDI spec %s: %s", path, exc)
            continue
        if isinstance(document, dict):
            found.extend(from_spec(document))
    return tuple(sorted(found, key=lambda c: (c.gpu_index, c.namespace, c.name, c.uid)))
