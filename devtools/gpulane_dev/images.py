"""Build gpulane's images here, from Debian packages and the project's own wheel, cached outside the repo.

Two images, both docker-archive tars under `<cache>/images` (imagearchive.py):
- the sandbox ("pause") image, `localhost/gpulane-pause:dev`: one layer holding Debian's static busybox;
- the project image, `localhost/gpulane:dev`: operator, agent, client and `gpulane-workload`. Three
  layers, each rebuilt only when its input changes: a Debian rootfs with python3 (mmdebstrap, keyed by
  the package list), the Python dependencies (pip --target, keyed by the requirement list) and the
  project itself (its wheel installed with --no-deps; rebuilt whenever the wheel's content changes).

Debian's python3 is 3.11, the same minor version as the interpreter that runs this (checked), so the
dependency wheels pip picks here are the ones the image's python3 can import.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpulane_dev import imagearchive
from gpulane_dev.commands import CommandFailed, Reporter, run, timed
from gpulane_dev.settings import CacheLayout

PROJECT_IMAGE = "localhost/gpulane:dev"
PAUSE_IMAGE = "localhost/gpulane-pause:dev"
DEBIAN_SUITE = "bookworm"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# python3 runs everything; grpcio's extension needs libstdc++6; procps and iproute2 make `kubectl exec`
# useful for debugging.
BASE_PACKAGES: tuple[str, ...] = ("python3", "libstdc++6", "procps", "iproute2", "ca-certificates")
# The extras the image serves: the operator, the agent and the client (which has no dependencies).
IMAGE_EXTRAS: tuple[str, ...] = ("operator", "agent")
SITE_DIR = "opt/gpulane/lib"
SCRIPT_DIR = "usr/local/bin"
BASE_PYTHON = (3, 11)


class ImageBuildError(RuntimeError):
    """An image cannot be built; the message names the step and what to install or fix."""


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """A docker-archive tar ready for `ctr images import`, and the digest of its config."""

    ref: str
    archive: Path
    config_digest: str


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _images_dir(cache: CacheLayout) -> Path:
    path = cache.root / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_pause(cache: CacheLayout, busybox: Path = Path("/bin/busybox")) -> BuiltImage:
    """The sandbox image: a shell that sleeps until it is told to stop (SIGTERM ends it at once)."""
    if not busybox.is_file():
        raise ImageBuildError(f"pause image: {busybox} is missing; apt-get install busybox-static")
    out_dir = _images_dir(cache)
    layer = out_dir / f"pause-layer-{_key(imagearchive.sha256_file(busybox))}.tar"
    entries = [
        imagearchive.LayerFile("bin/busybox", source=busybox, mode=0o755),
        imagearchive.LayerFile("bin/sh", link="busybox"),
        imagearchive.LayerFile("bin/sleep", link="busybox"),
    ]
    digest = imagearchive.write_layer(entries, layer) if not layer.exists() else imagearchive.sha256_file(layer)
    # PID 1 ignores signals it has no handler for, so the trap is what makes sandbox stops quick.
    cmd = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done")
    archive = out_dir / "gpulane-pause.tar"
    config = imagearchive.write_image(archive, PAUSE_IMAGE, [(layer, digest)], imagearchive.ImageConfig(cmd=cmd))
    return BuiltImage(PAUSE_IMAGE, archive, config)


def requirements(extras: Sequence[str] = IMAGE_EXTRAS) -> list[str]:
    """The installed distribution's requirements for `extras`, as pip requirement strings."""
    from importlib.metadata import requires

    reqs = []
    for line in requires("gpulane") or []:
        spec, _, marker = line.partition(";")
        marker = marker.strip()
        if not marker or any(marker == f'extra == "{extra}"' for extra in extras):
            reqs.append(spec.strip())
    return sorted(set(reqs))


def _check_python() -> None:
    if sys.version_info[:2] != BASE_PYTHON:
        raise ImageBuildError(
            f"project image: Debian {DEBIAN_SUITE}'s python3 is {BASE_PYTHON[0]}.{BASE_PYTHON[1]} but this "
            f"interpreter is {sys.version_info[0]}.{sys.version_info[1]}; build with a Python 3.11 venv"
        )


def _base_layer(cache: CacheLayout, reporter: Reporter) -> Path:
    layer = _images_dir(cache) / f"base-{DEBIAN_SUITE}-{_key(DEBIAN_SUITE, *BASE_PACKAGES)}.tar"
    if layer.exists():
        return layer
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageBuildError("project image: mmdebstrap is missing; apt-get install mmdebstrap")
    if not DEBIAN_SOURCES.exists():
        raise ImageBuildError(f"project image: {DEBIAN_SOURCES} (the machine's apt sources) is missing")
    reporter.say(f"building the Debian {DEBIAN_SUITE} base layer ({', '.join(BASE_PACKAGES)}) with mmdebstrap")
    started = time.monotonic()
    tmp = layer.with_name(layer.name + ".tmp.tar")
    run(
        [mmdebstrap, "--variant=essential", f"--include={','.join(BASE_PACKAGES)}",
         "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
         "--dpkgopt=path-exclude=/usr/share/locale/*", DEBIAN_SUITE, str(tmp), str(DEBIAN_SOURCES)],
        log=cache.logs / "images.log", timeout=1800,
    )  # fmt: skip
    tmp.replace(layer)
    timed(reporter, "built the base layer", started)
    return layer


def _pip_target_layer(cache: CacheLayout, name: str, args: Sequence[str], reporter: Reporter) -> tuple[Path, str]:
    """`pip install --target` into a scratch dir, minus what varies between runs; written as a layer."""
    layer = _images_dir(cache) / f"{name}.tar"
    with tempfile.TemporaryDirectory(prefix=f"gpulane-{name}-") as scratch:
        target = Path(scratch) / SITE_DIR
        run([sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--no-warn-script-location",
             "--target", str(target), *args], log=cache.logs / "images.log", timeout=1800)  # fmt: skip
        shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts with this host's shebang
        for direct_url in target.glob("*.dist-info/direct_url.json"):
            direct_url.unlink()  # names the scratch directory: differs on every run
        for record in target.glob("*.dist-info/RECORD"):
            lines = [ln for ln in record.read_text().splitlines() if "direct_url.json" not in ln and "/bin/" not in ln]
            record.write_text("\n".join(lines) + "\n")
        digest = imagearchive.write_tree_layer(Path(scratch), layer)
    reporter.say(f"layer {name}: sha256 {digest[:12]}")
    return layer, digest


def _deps_layer(cache: CacheLayout, reporter: Reporter) -> tuple[Path, str]:
    reqs = requirements()
    key = _key(f"py{BASE_PYTHON[0]}{BASE_PYTHON[1]}", *reqs)
    layer = _images_dir(cache) / f"deps-{key}.tar"
    if layer.exists():
        return layer, imagearchive.sha256_file(layer)
    started = time.monotonic()
    built, digest = _pip_target_layer(cache, f"deps-{key}", reqs, reporter)
    timed(reporter, f"built the dependency layer ({len(reqs)} requirements)", started)
    return built, digest


def _wheel(repo: Path, cache: CacheLayout, into: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(into), str(repo)],
        log=cache.logs / "images.log", timeout=900)  # fmt: skip
    wheels = sorted(into.glob("gpulane-*.whl"))
    if not wheels:
        raise ImageBuildError(f"project image: pip wheel wrote no gpulane wheel into {into}")
    return wheels[-1]


def console_scripts(wheel: Path) -> dict[str, str]:
    """`[console_scripts]` of the wheel's entry_points.txt: script name -> "module:function"."""
    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")), None)
        text = zf.read(name).decode() if name else ""
    scripts: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "console_scripts" and "=" in line:
            key, _, value = line.partition("=")
            scripts[key.strip()] = value.strip()
    return scripts


def script_text(target: str) -> str:
    module, _, func = target.partition(":")
    return f"#!/usr/bin/python3\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"


def build_project(repo: Path, cache: CacheLayout, reporter: Reporter) -> BuiltImage:
    """The project image; layers are reused when their inputs did not change."""
    _check_python()
    base = _base_layer(cache, reporter)
    layers = [(base, imagearchive.sha256_file(base)), _deps_layer(cache, reporter)]
    with tempfile.TemporaryDirectory(prefix="gpulane-wheel-") as wheel_dir:
        wheel = _wheel(repo, cache, Path(wheel_dir))
        app_layer, app_digest = _pip_target_layer(cache, "app", ["--no-deps", str(wheel)], reporter)
        scripts = console_scripts(wheel)
    if "gpulane" not in scripts:
        raise ImageBuildError(f"project image: the wheel has no `gpulane` console script ({sorted(scripts)})")
    entries = [imagearchive.LayerFile(f"{SCRIPT_DIR}/{n}", data=script_text(t).encode(), mode=0o755)
               for n, t in sorted(scripts.items())]  # fmt: skip
    scripts_layer = _images_dir(cache) / "scripts.tar"
    layers += [(app_layer, app_digest), (scripts_layer, imagearchive.write_layer(entries, scripts_layer))]
    config = imagearchive.ImageConfig(
        cmd=("gpulane", "--help"),
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": f"/{SITE_DIR}", "PYTHONUNBUFFERED": "1"},
        labels={"dev.gpulane.layers": json.dumps([d for _, d in layers])},
    )
    archive = _images_dir(cache) / "gpulane.tar"
    digest = imagearchive.write_image(archive, PROJECT_IMAGE, layers, config)
    return BuiltImage(PROJECT_IMAGE, archive, digest)


def build_all(repo: Path, cache: CacheLayout, reporter: Reporter) -> tuple[BuiltImage, BuiltImage]:
    """(pause, project); the first build takes about a minute, later ones seconds."""
    started = time.monotonic()
    try:
        pause = build_pause(cache)
        project = build_project(repo, cache, reporter)
    except CommandFailed as exc:
        raise ImageBuildError(f"building images failed: {exc}") from exc
    timed(reporter, f"images ready ({project.ref} config {project.config_digest[:12]})", started)
    return pause, project
