"""Write container images as docker-archive tars, with no Docker and no registry.

An image is a tar holding `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`), the image config JSON
(`architecture`, `os`, `config.Cmd/Env/WorkingDir`, `rootfs.diff_ids` = sha256 of each layer tar) and the
layer tars themselves (real-node.md, "Images without any registry"). containerd's `ctr images import`
reads exactly this. Layers are built from directories or files with Python's tarfile, deterministically
(sorted names, fixed mtimes and owners), so an unchanged input gives a byte-identical layer and digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_CHUNK = 1 << 20
# A fixed mtime (2020-01-01) keeps layers reproducible whatever the files' real timestamps are.
_EPOCH = 1577836800


@dataclass(frozen=True, slots=True)
class LayerFile:
    """One entry of a layer built from scratch: a regular file, a symlink or a directory."""

    path: str  # inside the image, without a leading slash
    data: bytes | None = None  # regular file content
    source: Path | None = None  # or a host file to copy
    link: str | None = None  # symlink target
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The part of the OCI/docker image config that gpulane's images set."""

    cmd: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    working_dir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_layer(entries: Iterable[LayerFile], out: Path) -> str:
    """Write a layer tar from `entries` (parents are added as directories); return its sha256."""
    items = sorted(entries, key=lambda e: e.path)
    dirs: set[str] = set()
    for entry in items:
        parts = entry.path.strip("/").split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            info = _normalized(tarfile.TarInfo(d))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for entry in items:
            info = _normalized(tarfile.TarInfo(entry.path.strip("/")))
            info.mode = entry.mode
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                data = entry.data if entry.data is not None else (entry.source or Path("/dev/null")).read_bytes()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return sha256_file(out)


def write_tree_layer(root: Path, out: Path, *, prefix: str = "") -> str:
    """Write a layer tar holding every file under `root` (at `prefix` in the image); return its sha256."""
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            here = Path(dirpath)
            for name in [*sorted(dirnames), *sorted(filenames)]:
                path = here / name
                arcname = str(Path(prefix) / path.relative_to(root)).lstrip("/")
                tar.add(path, arcname=arcname, recursive=False, filter=_normalized)
    tmp.replace(out)
    return sha256_file(out)


def write_image(out: Path, repo_tag: str, layers: Sequence[tuple[Path, str]], config: ImageConfig) -> str:
    """Write the docker-archive tar at `out` from layer tars and their sha256; return the config digest."""
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": list(config.cmd),
            "Entrypoint": list(config.entrypoint) or None,
            "Env": [f"{k}={v}" for k, v in sorted(config.env.items())],
            "WorkingDir": config.working_dir,
            "Labels": dict(config.labels) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}" for _, digest in layers]},
        "history": [{"created_by": "gpulane_dev.imagearchive"} for _ in layers],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{
        "Config": f"{config_digest}.json",
        "RepoTags": [repo_tag],
        "Layers": [f"{digest}/layer.tar" for _, digest in layers],
    }]  # fmt: skip
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in ((f"{config_digest}.json", config_bytes), ("manifest.json", json.dumps(manifest).encode())):
            info = _normalized(tarfile.TarInfo(name))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for path, digest in layers:
            tar.add(path, arcname=f"{digest}/layer.tar", filter=_normalized)
    tmp.replace(out)
    return config_digest
