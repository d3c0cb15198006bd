"""The wrapper module that lets the Go toolchain build kube-apiserver and etcd from the module proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_dev import gobuild
from gpulane_dev.settings import STAGING_MODULES, CacheLayout, Versions


def test_wrapper_go_mod_pins_kubernetes_etcd_and_replaces_all_31_staging_modules() -> None:
    text = gobuild.wrapper_go_mod(Versions())
    assert text.startswith("module gpulane.dev/k8s-binaries\n\ngo 1.24.0\n\ngodebug default=go1.24\n")
    assert "\tk8s.io/kubernetes v1.34.1\n" in text
    assert "\tgo.etcd.io/etcd/server/v3 v3.6.4\n" in text
    replaces = [line for line in text.splitlines() if line.startswith("replace ")]
    assert len(STAGING_MODULES) == 31
    assert len(replaces) == 31
    assert "replace k8s.io/client-go => k8s.io/client-go v0.34.1" in replaces
    assert "replace k8s.io/kube-aggregator => k8s.io/kube-aggregator v0.34.1" in replaces


def test_a_go_mod_filled_in_by_go_get_counts_as_current() -> None:
    base = gobuild.wrapper_go_mod(Versions())
    filled = base.replace("require (\n", "require (\n\tcel.dev/expr v0.24.0 // indirect\n")
    assert gobuild.wrapper_is_current(filled, Versions())
    assert not gobuild.wrapper_is_current(filled, Versions(kubernetes="v1.34.2"))
    assert not gobuild.wrapper_is_current(filled, Versions(etcd="v3.6.5"))


def test_tools_go_imports_both_commands() -> None:
    text = gobuild.wrapper_tools_go()
    assert text.startswith("//go:build tools\n")
    assert '_ "k8s.io/kubernetes/cmd/kube-apiserver"' in text
    assert '_ "go.etcd.io/etcd/server/v3"' in text


def test_apiserver_ldflags_stamp_the_version() -> None:
    flags = gobuild.apiserver_ldflags(Versions())
    assert flags == (
        "-s -w -X k8s.io/component-base/version.gitVersion=v1.34.1 "
        "-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
    )


def test_go_env_keeps_every_cache_under_the_cache_root() -> None:
    env = gobuild.go_env(CacheLayout(Path("/c")))
    assert env == {"GOMODCACHE": "/c/go/mod", "GOCACHE": "/c/go/build", "GOBIN": "/c/bin",
                   "CGO_ENABLED": "0", "GOFLAGS": ""}


def fake_go(tmp_path: Path) -> Path:
    """A `go` stand-in: logs its argv and GOCACHE, writes go.sum on `get` and the -o target on `build`."""
    script = tmp_path / "go"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$* | $GOCACHE | $(pwd)" >> {tmp_path / "go.calls"}\n'
        'if [ "$1" = get ]; then echo sum > go.sum; fi\n'
        'if [ "$1" = build ]; then while [ $# -gt 0 ]; do [ "$1" = -o ] && echo bin > "$2"; shift; done; fi\n'
    )
    script.chmod(0o755)
    return script


def test_build_resolves_once_then_only_builds(tmp_path: Path) -> None:
    from gpulane_dev.commands import Reporter

    layout = CacheLayout(tmp_path / "cache")
    go = fake_go(tmp_path)
    gobuild.build_control_plane(go, layout, Versions(), Reporter(None))
    calls = (tmp_path / "go.calls").read_text().splitlines()
    assert calls[0] == (
        f"get k8s.io/kubernetes/cmd/kube-apiserver@v1.34.1 go.etcd.io/etcd/server/v3@v3.6.4 | {layout.gocache} | "
        f"{layout.wrapper}"
    )
    assert calls[1].startswith(f"build -trimpath -ldflags {gobuild.apiserver_ldflags(Versions())} -o ")
    assert calls[1].endswith(f".kube-apiserver.tmp k8s.io/kubernetes/cmd/kube-apiserver | {layout.gocache} | {layout.wrapper}")
    assert calls[2].startswith("build -trimpath -ldflags -s -w -o ")
    assert (layout.bin / "kube-apiserver").read_text() == "bin\n"
    assert (layout.bin / "etcd").exists()
    assert (layout.wrapper / "go.mod").read_text() == gobuild.wrapper_go_mod(Versions())

    (tmp_path / "go.calls").unlink()
    gobuild.build_control_plane(go, layout, Versions(), Reporter(None))
    again = (tmp_path / "go.calls").read_text().splitlines()
    assert [c.split()[0] for c in again] == ["build", "build"]  # modules already resolved


def test_build_failure_names_the_command(tmp_path: Path) -> None:
    from gpulane_dev.commands import CommandFailed, Reporter

    go = tmp_path / "go"
    go.write_text("#!/bin/sh\necho 'go: k8s.io/kubernetes@v1.34.1: reading proxy: 404' >&2\nexit 1\n")
    go.chmod(0o755)
    with pytest.raises(CommandFailed) as info:
        gobuild.build_control_plane(go, CacheLayout(tmp_path / "c"), Versions(), Reporter(None))
    assert f"command failed (exit 1): {go} get k8s.io/kubernetes/cmd/kube-apiserver@v1.34.1" in str(info.value)
    assert "reading proxy: 404" in str(info.value)
