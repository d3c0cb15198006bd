"""The wrapper module that lets the Go toolchain build kube-apiserver and etcd from the module proxy."""

from __future__ import annotations

from pathlib import Path

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
