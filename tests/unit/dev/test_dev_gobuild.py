"""The wrapper module that lets the Go toolchain build the Kubernetes commands and etcd from the module proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_dev import gobuild
from gpulane_dev.settings import CacheLayout, Versions

# The shape of k8s.io/kubernetes v1.37.2's go.mod (abridged: 3 of its 33 staging replaces).
UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
	go.etcd.io/etcd/client/v3 v3.7.0
	k8s.io/api v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
	k8s.io/streaming => ./staging/src/k8s.io/streaming
)
"""
UPSTREAM = gobuild.parse_upstream_go_mod(UPSTREAM_GO_MOD)


def test_upstream_go_mod_gives_go_line_godebug_and_every_staging_module() -> None:
    expected = gobuild.UpstreamModule("1.26.0", "default=go1.26", ("api", "cri-streaming", "streaming"))
    assert expected == UPSTREAM


def test_upstream_go_mod_without_staging_replaces_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no `k8s\.io/<name> => \./staging"):
        gobuild.parse_upstream_go_mod("module k8s.io/kubernetes\n\ngo 1.26.0\n")


def test_wrapper_go_mod_pins_kubernetes_etcd_and_replaces_every_staging_module() -> None:
    text = gobuild.wrapper_go_mod(Versions(), UPSTREAM)
    assert text.startswith("module gpulane.dev/k8s-binaries\n\ngo 1.26.0\n\ngodebug default=go1.26\n")
    assert "\tk8s.io/kubernetes v1.37.2\n" in text
    assert "\tgo.etcd.io/etcd/server/v3 v3.7.0\n" in text
    replaces = [line for line in text.splitlines() if line.startswith("replace ")]
    assert replaces == [
        "replace k8s.io/api => k8s.io/api v0.37.2",
        "replace k8s.io/cri-streaming => k8s.io/cri-streaming v0.37.2",
        "replace k8s.io/streaming => k8s.io/streaming v0.37.2",
    ]


def test_a_go_mod_filled_in_by_go_get_counts_as_current() -> None:
    base = gobuild.wrapper_go_mod(Versions(), UPSTREAM)
    filled = base.replace("require (\n", "require (\n\tcel.dev/expr v0.24.0 // indirect\n")
    assert gobuild.wrapper_is_current(filled, Versions())
    assert not gobuild.wrapper_is_current(filled, Versions(kubernetes="v1.37.3"))
    assert not gobuild.wrapper_is_current(filled, Versions(etcd="v3.7.1"))


def test_tools_go_imports_every_command() -> None:
    text = gobuild.wrapper_tools_go()
    assert text.startswith("//go:build tools\n")
    for name in ("kube-apiserver", "kubelet", "kube-scheduler", "kube-controller-manager"):
        assert f'_ "k8s.io/kubernetes/cmd/{name}"' in text
    assert '_ "go.etcd.io/etcd/server/v3"' in text


def test_kubernetes_ldflags_stamp_the_version() -> None:
    flags = gobuild.kubernetes_ldflags(Versions())
    assert flags == (
        "-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 "
        "-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
    )


def test_go_env_keeps_every_cache_under_the_cache_root() -> None:
    env = gobuild.go_env(CacheLayout(Path("/c")))
    assert env == {"GOMODCACHE": "/c/go/mod", "GOCACHE": "/c/go/build", "GOBIN": "/c/bin",
                   "CGO_ENABLED": "0", "GOFLAGS": ""}


def fake_go(tmp_path: Path) -> Path:
    """A `go` stand-in: logs its argv and GOCACHE, answers `mod download` with a go.mod it wrote, writes
    go.sum on `get` and the -o target on `build`."""
    upstream = tmp_path / "kubernetes.mod"
    upstream.write_text(UPSTREAM_GO_MOD)
    script = tmp_path / "go"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$* | $GOCACHE | $(pwd)" >> {tmp_path / "go.calls"}\n'
        f'if [ "$1" = mod ]; then echo \'{{"GoMod": "{upstream}"}}\'; fi\n'
        'if [ "$1" = get ]; then echo sum > go.sum; fi\n'
        'if [ "$1" = build ]; then while [ $# -gt 0 ]; do [ "$1" = -o ] && echo bin > "$2"; shift; done; fi\n'
    )
    script.chmod(0o755)
    return script


def test_build_resolves_once_then_only_builds_what_is_named(tmp_path: Path) -> None:
    from gpulane_dev.commands import Reporter

    layout = CacheLayout(tmp_path / "cache")
    go = fake_go(tmp_path)
    gobuild.build_kubernetes(go, layout, Versions(), Reporter(None), ["kube-apiserver", "kubelet", "etcd"])
    calls = (tmp_path / "go.calls").read_text().splitlines()
    assert calls[0] == f"mod download -json k8s.io/kubernetes@v1.37.2 | {layout.gocache} | {layout.root}"
    assert calls[1] == (
        "get k8s.io/kubernetes/cmd/kube-apiserver@v1.37.2 k8s.io/kubernetes/cmd/kubelet@v1.37.2 "
        "k8s.io/kubernetes/cmd/kube-scheduler@v1.37.2 k8s.io/kubernetes/cmd/kube-controller-manager@v1.37.2 "
        f"go.etcd.io/etcd/server/v3@v3.7.0 | {layout.gocache} | "
        f"{layout.wrapper}"
    )
    assert calls[2].startswith(f"build -trimpath -ldflags {gobuild.kubernetes_ldflags(Versions())} -o ")
    assert calls[2].endswith(f".kube-apiserver.tmp k8s.io/kubernetes/cmd/kube-apiserver | {layout.gocache} | {layout.wrapper}")
    assert calls[3].endswith(f".kubelet.tmp k8s.io/kubernetes/cmd/kubelet | {layout.gocache} | {layout.wrapper}")
    assert calls[4].startswith("build -trimpath -ldflags -s -w -o ")
    assert len(calls) == 5  # kube-scheduler and kube-controller-manager were not named
    assert (layout.bin / "kube-apiserver").read_text() == "bin\n"
    assert (layout.bin / "kubelet").exists() and (layout.bin / "etcd").exists()
    assert not (layout.bin / "kube-scheduler").exists()
    assert (layout.wrapper / "go.mod").read_text() == gobuild.wrapper_go_mod(Versions(), UPSTREAM)

    (tmp_path / "go.calls").unlink()
    gobuild.build_kubernetes(go, layout, Versions(), Reporter(None), ["kube-scheduler"])
    again = (tmp_path / "go.calls").read_text().splitlines()
    assert [c.split()[0] for c in again] == ["build"]  # modules already resolved
    assert again[0].endswith(f".kube-scheduler.tmp k8s.io/kubernetes/cmd/kube-scheduler | {layout.gocache} | {layout.wrapper}")


def test_build_failure_names_the_command(tmp_path: Path) -> None:
    from gpulane_dev.commands import CommandFailed, Reporter

    go = tmp_path / "go"
    go.write_text("#!/bin/sh\necho 'go: k8s.io/kubernetes@v1.37.2: reading proxy: 404' >&2\nexit 1\n")
    go.chmod(0o755)
    with pytest.raises(CommandFailed) as info:
        gobuild.build_kubernetes(go, CacheLayout(tmp_path / "c"), Versions(), Reporter(None), ["kube-apiserver"])
    assert f"command failed (exit 1): {go} mod download -json k8s.io/kubernetes@v1.37.2" in str(info.value)
    assert "reading proxy: 404" in str(info.value)
