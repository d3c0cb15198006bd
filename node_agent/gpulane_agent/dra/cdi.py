"""CDI specs for prepared claims: the pure document, and its file written and removed atomically.

One spec file per claim (``gpu.gpulane.dev-<claim uid>.json``) with one device named after the claim
uid, so preparing is idempotent (the same claim always writes the same bytes to the same path) and
unpreparing one claim never touches another's file. The container runtime (containerd >= 1.7 with CDI
on, CRI-O) reads every ``*.json`` in its CDI directories and applies the device's ``containerEdits`` to
each container that names ``gpu.gpulane.dev/gpu=<claim uid>``, which is the ID NodePrepareResources
returns.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gpulane_agent.deviceplugin.allocate import ContainerGrant
from gpulane_agent.dra.claims import DRIVER

CDI_VERSION = "0.6.0"
CDI_KIND = f"{DRIVER}/gpu"


def device_id(claim_uid: str) -> str:
    """The fully qualified CDI device name the runtime resolves."""
    return f"{CDI_KIND}={claim_uid}"


def spec_name(claim_uid: str) -> str:
    return f"{DRIVER}-{claim_uid}.json"


def spec(claim_uid: str, grant: ContainerGrant) -> dict[str, Any]:
    """The CDI document: env as KEY=VALUE in a stable order, bind mounts with their access mode."""
    mounts = [
        {
            "hostPath": m.host_path,
            "containerPath": m.container_path,
            "options": ["rbind", "ro" if m.read_only else "rw"],
        }
        for m in grant.mounts
    ]
    env = [f"{k}={v}" for k, v in sorted(grant.envs.items())]
    return {
        "cdiVersion": CDI_VERSION,
        "kind": CDI_KIND,
        "devices": [{"name": claim_uid, "containerEdits": {"env": env, "mounts": mounts}}],
    }


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
