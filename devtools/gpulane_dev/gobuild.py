"""Build the Kubernetes components, etcd and kwok from the Go module proxy into the cache.

No registry ships kube-apiserver or the kubelet, and `go install k8s.io/kubernetes/cmd/kubelet@v1.37.2`
is refused because k8s.io/kubernetes's go.mod replaces the staging modules with local paths. A tiny
wrapper module that requires k8s.io/kubernetes and replaces each staging module with its published
v0.X.Y builds every command (control-plane.md §1); the same wrapper builds etcd. The staging list and
the `go`/`godebug` lines are read from the pinned release's own go.mod, so a version bump that adds a
staging module needs no code change. kwok has no replace directives, so plain `go install` works.
GOMODCACHE and GOCACHE live in the cache, so a second run takes seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpulane_dev.commands import CommandFailed, Reporter, run, timed
from gpulane_dev.settings import CacheLayout, Versions

WRAPPER_MODULE = "gpulane.dev/k8s-binaries"
KUBE_APISERVER_PKG = "k8s.io/kubernetes/cmd/kube-apiserver"
ETCD_PKG = "go.etcd.io/etcd/server/v3"
# Every Kubernetes command the test bed runs, by binary name; all built from the wrapper module.
KUBERNETES_COMMANDS: tuple[str, ...] = (
    "kube-apiserver", "kubelet", "kube-scheduler", "kube-controller-manager",
)  # fmt: skip
KWOK_PKG = "sigs.k8s.io/kwok/cmd/kwok"
CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "ctr")
_GO_VERSION = re.compile(r"go(\d+)\.(\d+)")
# kwok v0.8.0 declares `go 1.26.0`; older toolchains would need GOTOOLCHAIN to download a newer one.
MIN_GO = (1, 24)
_BUILD_TIMEOUT_S = 3600.0


class GoMissing(RuntimeError):
    """No usable Go toolchain; the message says what to install."""


@dataclass(frozen=True, slots=True)
class UpstreamModule:
    """What the wrapper copies from k8s.io/kubernetes's own go.mod at the pinned release."""

    go: str  # the `go` directive, e.g. "1.26.0"
    godebug: str | None  # e.g. "default=go1.26"; only the main module's godebug applies
    staging: tuple[str, ...]  # staging module names replaced with ./staging paths upstream


_STAGING_REPLACE = re.compile(r"^\s*(?:replace\s+)?k8s\.io/([\w.-]+)\s+=>\s+\./staging/src/k8s\.io/\1\s*$")


def parse_upstream_go_mod(text: str) -> UpstreamModule:
    """Read the go directive, godebug and staging replaces from k8s.io/kubernetes's go.mod."""
    go = next((line.split()[1] for line in text.splitlines() if line.startswith("go ")), None)
    if go is None:
        raise ValueError("k8s.io/kubernetes go.mod: no `go` directive")
    godebug = next((line.split(None, 1)[1].strip() for line in text.splitlines() if line.startswith("godebug ")), None)
    staging = tuple(sorted({m.group(1) for line in text.splitlines() if (m := _STAGING_REPLACE.match(line))}))
    if not staging:
        raise ValueError("k8s.io/kubernetes go.mod: no `k8s.io/<name> => ./staging/...` replace directives")
    return UpstreamModule(go=go, godebug=godebug, staging=staging)


def wrapper_go_mod(versions: Versions, upstream: UpstreamModule) -> str:
    """The wrapper module's go.mod before `go get` fills in the indirect requirements."""
    staging = versions.staging
    replaces = "\n".join(f"replace k8s.io/{name} => k8s.io/{name} {staging}" for name in upstream.staging)
    godebug = f"godebug {upstream.godebug}\n\n" if upstream.godebug else ""
    return (
        f"module {WRAPPER_MODULE}\n\n"
        f"go {upstream.go}\n\n"
        f"{godebug}"
        "require (\n"
        f"\tk8s.io/kubernetes {versions.kubernetes}\n"
        f"\t{ETCD_PKG} {versions.etcd}\n"
        ")\n\n"
        f"{replaces}\n"
    )


def command_package(name: str) -> str:
    return f"k8s.io/kubernetes/cmd/{name}"


def wrapper_tools_go() -> str:
    """A build-tagged file that keeps every command in the module graph."""
    imports = "".join(f'\t_ "{command_package(name)}"\n' for name in KUBERNETES_COMMANDS)
    return f'//go:build tools\n\npackage tools\n\nimport (\n{imports}\t_ "{ETCD_PKG}"\n)\n'


def wrapper_is_current(go_mod_text: str, versions: Versions) -> bool:
    """True when an existing go.mod already pins these versions, so `go get` can be skipped."""
    needed = [f"k8s.io/kubernetes {versions.kubernetes}", f"{ETCD_PKG} {versions.etcd}"]
    needed.append(f"replace k8s.io/api => k8s.io/api {versions.staging}")
    return all(line in go_mod_text for line in needed)


def kubernetes_ldflags(versions: Versions) -> str:
    """Link flags that make each component's `--version` report the pinned version, stripped."""
    major, minor, _ = versions.kubernetes.lstrip("v").split(".")
    base = "k8s.io/component-base/version"
    return (
        f"-s -w -X {base}.gitVersion={versions.kubernetes} -X {base}.gitMajor={major} -X {base}.gitMinor={minor}"
    )


def go_env(cache: CacheLayout) -> dict[str, str]:
    return {
        "GOMODCACHE": str(cache.gomodcache),
        "GOCACHE": str(cache.gocache),
        "GOBIN": str(cache.bin),
        "CGO_ENABLED": "0",
        # A user's GOFLAGS (-mod=vendor, say) must not leak into the wrapper build.
        "GOFLAGS": "",
    }


def find_go() -> Path:
    """The `go` binary, checked to be new enough; GoMissing otherwise."""
    found = shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if Path(p).exists()), None
    )
    if found is None:
        raise GoMissing(
            "go: not found on PATH; install Go >= 1.24 (https://go.dev/dl/) to build kube-apiserver, "
            "etcd and kwok, or set KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver"
        )
    out = run([found, "version"])
    match = _GO_VERSION.search(out)
    if match is None or (int(match.group(1)), int(match.group(2))) < MIN_GO:
        raise GoMissing(f"{found}: {out.strip()!r} is older than go{MIN_GO[0]}.{MIN_GO[1]}")
    return Path(found)


def upstream_module(go: Path, cache: CacheLayout, versions: Versions, log: Path) -> UpstreamModule:
    """Download (or reuse) k8s.io/kubernetes's go.mod at the pinned version and parse it."""
    out = run(
        [str(go), "mod", "download", "-json", f"k8s.io/kubernetes@{versions.kubernetes}"],
        env=go_env(cache), cwd=cache.root, log=log, timeout=_BUILD_TIMEOUT_S,
    )  # fmt: skip
    try:
        go_mod = Path(json.loads(out)["GoMod"])
        return parse_upstream_go_mod(go_mod.read_text())
    except (KeyError, ValueError, OSError) as exc:
        raise CommandFailed(["go", "mod", "download", f"k8s.io/kubernetes@{versions.kubernetes}"], 1,
                            f"cannot read the release's go.mod: {exc}\n{out}", log) from exc  # fmt: skip


def build_kubernetes(
    go: Path, cache: CacheLayout, versions: Versions, reporter: Reporter, names: Sequence[str]
) -> None:
    """Build the named Kubernetes commands (and etcd, when named) into `cache.bin`."""
    env = go_env(cache)
    log = cache.logs / "go-build.log"
    cache.wrapper.mkdir(parents=True, exist_ok=True)
    cache.bin.mkdir(parents=True, exist_ok=True)
    go_mod = cache.wrapper / "go.mod"
    tools_go = cache.wrapper / "tools.go"
    # A new command in tools.go needs its packages' go.sum entries: resolve again.
    same_commands = tools_go.exists() and tools_go.read_text() == wrapper_tools_go()
    tools_go.write_text(wrapper_tools_go())
    # go.sum exists only after a completed `go get`; without it an interrupted run is redone.
    resolved = same_commands and go_mod.exists() and (cache.wrapper / "go.sum").exists()
    if not (resolved and wrapper_is_current(go_mod.read_text(), versions)):
        go_mod.write_text(wrapper_go_mod(versions, upstream_module(go, cache, versions, log)))
        (cache.wrapper / "go.sum").unlink(missing_ok=True)
        reporter.say(f"resolving modules (go get, a few hundred MB on a cold cache); log {log}")
        started = time.monotonic()
        run(
            [str(go), "get", *(f"{command_package(n)}@{versions.kubernetes}" for n in KUBERNETES_COMMANDS),
             f"{ETCD_PKG}@{versions.etcd}"],
            env=env, cwd=cache.wrapper, log=log, timeout=_BUILD_TIMEOUT_S,
        )  # fmt: skip
        timed(reporter, "modules resolved", started)
    builds = [(n, command_package(n), kubernetes_ldflags(versions), versions.kubernetes) for n in KUBERNETES_COMMANDS]
    builds.append(("etcd", ETCD_PKG, "-s -w", versions.etcd))
    for name, pkg, ldflags, version in builds:
        if name not in names:
            continue
        reporter.say(f"building {name} {version} (cold: minutes on 2 cores; cached: seconds)")
        started = time.monotonic()
        target = cache.bin / f".{name}.tmp"
        run(
            [str(go), "build", "-trimpath", "-ldflags", ldflags, "-o", str(target), pkg],
            env=env, cwd=cache.wrapper, log=log, timeout=_BUILD_TIMEOUT_S,
        )  # fmt: skip
        target.replace(cache.bin / name)  # atomic: a half-written binary is never picked up
        timed(reporter, f"built {name}", started)


def install_kwok(go: Path, cache: CacheLayout, versions: Versions, reporter: Reporter) -> None:
    """`go install sigs.k8s.io/kwok/cmd/kwok@<version>` with GOBIN in the cache."""
    reporter.say(f"building kwok {versions.kwok} (go install)")
    started = time.monotonic()
    cache.bin.mkdir(parents=True, exist_ok=True)
    try:
        run(
            [str(go), "install", "-trimpath", "-ldflags", "-s -w", f"{KWOK_PKG}@{versions.kwok}"],
            env=go_env(cache), cwd=cache.root, log=cache.logs / "go-build.log", timeout=_BUILD_TIMEOUT_S,
        )  # fmt: skip
    except CommandFailed as exc:
        if "requires go >=" in exc.output:
            raise GoMissing(f"kwok {versions.kwok} needs a newer Go; {exc}") from exc
        raise
    timed(reporter, "built kwok", started)


def install_containerd(go: Path, cache: CacheLayout, versions: Versions, reporter: Reporter) -> None:
    """containerd, containerd-shim-runc-v2 and ctr at `versions.containerd` into `cache.containerd_bin`.

    Pure Go (CGO_ENABLED=0, no C toolchain needed); `no_btrfs` drops the btrfs snapshotter, the one
    part that needs C headers. Real nodes use the overlayfs snapshotter.
    """
    reporter.say(f"building containerd {versions.containerd} (go install; cold: about 5 minutes on 2 cores)")
    started = time.monotonic()
    cache.containerd_bin.mkdir(parents=True, exist_ok=True)
    packages = [f"{CONTAINERD_MODULE}/cmd/{name}@{versions.containerd}" for name in CONTAINERD_COMMANDS]
    run(
        [str(go), "install", "-trimpath", "-ldflags", "-s -w", "-tags", "no_btrfs", *packages],
        env={**go_env(cache), "GOBIN": str(cache.containerd_bin)}, cwd=cache.root,
        log=cache.logs / "go-build.log", timeout=_BUILD_TIMEOUT_S,
    )  # fmt: skip
    timed(reporter, "built containerd", started)
