"""A real local Kubernetes control plane: etcd + kube-apiserver (TLS, RBAC) + kwok, no containers.

The honest test of an operator is a real API server: schema and CEL validation, watches and their
resourceVersions, optimistic concurrency, the Binding subresource and RBAC. This starts one the way
controller-runtime's envtest does (control-plane.md §3), plus kwok (§4) so fake nodes turn Ready and
pods bound to them turn Running. There is no kube-controller-manager: no garbage collection, no
namespace finalization (deleted namespaces stay Terminating), no ServiceAccount tokens, and
Deployments make no Pods. There is no scheduler either: gpulane binds pods itself.
"""

from __future__ import annotations

import base64
import importlib.resources
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from gpulane_dev import pki as pkimod
from gpulane_dev import procs
from gpulane_dev.binaries import Binaries

SERVICE_CIDR = "10.0.0.0/24"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
KWOK_STAGES_RESOURCE = "kwok_stages.yaml"
KWOK_READY_LINE = '"msg":"Watch nodes"'
_HTTP_TIMEOUT_S = 2.0
_PORT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class ControlPlaneOptions:
    """How to start a control plane. Ports left at None are picked free on loopback."""

    workdir: Path
    kube_apiserver: Path
    etcd: Path
    kwok: Path | None = None
    # True for test sessions (processes die with their parent); False for the detached dev cluster.
    die_with_parent: bool = True
    start_timeout_s: float = 120.0
    etcd_port: int | None = None
    etcd_peer_port: int | None = None
    apiserver_port: int | None = None
    # Real kubelets (realnodes.py): ServiceAccount admission on (kube-controller-manager makes the
    # accounts) and the apiserver's client identity towards kubelets, for logs, exec and port-forward.
    real_nodes: bool = False

    @classmethod
    def from_binaries(cls, binaries: Binaries, workdir: Path, *, with_kwok: bool = True) -> ControlPlaneOptions:
        return cls(
            workdir=workdir,
            kube_apiserver=binaries.kube_apiserver,
            etcd=binaries.etcd,
            kwok=binaries.kwok if with_kwok else None,
        )


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    """The admin identity: a client certificate in system:masters, or the same user by bearer token."""

    user: str
    groups: tuple[str, ...]
    client_cert: Path
    client_key: Path
    ca_cert: Path
    token: str


@dataclass(frozen=True, slots=True)
class StartupTimings:
    """Seconds measured while starting (reported in docs/control-plane.md)."""

    etcd_ready_s: float
    apiserver_ready_s: float
    total_s: float


@dataclass(slots=True)
class _Ports:
    etcd: int
    etcd_peer: int
    apiserver: int


def etcd_argv(binary: Path, data_dir: Path, port: int, peer_port: int) -> tuple[str, ...]:
    client = f"http://127.0.0.1:{port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return (
        str(binary), "--name=default", f"--data-dir={data_dir}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",  # a throwaway cluster: speed over durability
        "--log-level=warn",
    )  # fmt: skip


def apiserver_argv(binary: Path, certs: pkimod.Pki, port: int, etcd_port: int, cert_dir: Path,
                   *, real_nodes: bool = False) -> tuple[str, ...]:  # fmt: skip
    if real_nodes:
        nodes: tuple[str, ...] = (
            f"--kubelet-client-certificate={certs.admin_cert}", f"--kubelet-client-key={certs.admin_key}",
            f"--kubelet-certificate-authority={certs.ca_cert}", "--kubelet-preferred-address-types=InternalIP",
        )  # fmt: skip
    else:
        # No controller-manager issues ServiceAccount tokens, so the admission plugin would reject pods.
        nodes = ("--disable-admission-plugins=ServiceAccount",)
    return (
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={certs.serving_cert}",
        f"--tls-private-key-file={certs.serving_key}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--authorization-mode=RBAC",
        *nodes,
        f"--service-account-issuer=https://127.0.0.1:{port}/",
        f"--service-account-key-file={certs.sa_public}",
        f"--service-account-signing-key-file={certs.sa_private}",
        f"--client-ca-file={certs.ca_cert}",
        f"--token-auth-file={certs.token_file}",
        "--profiling=false",
        # A loopback address cannot be the `kubernetes` Service's endpoint; skip that reconciler.
        "--endpoint-reconciler-type=none",
    )


def kwok_argv(binary: Path, kubeconfig: Path, config: Path) -> tuple[str, ...]:
    return (
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--config={config}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
        "--manage-nodes-with-label-selector=",
        "--manage-single-node=",
        "--cidr=10.0.0.0/24",
        "--node-ip=10.0.0.1",
        "--node-lease-duration-seconds=40",
    )


def kubeconfig_text(server: str, certs: pkimod.Pki, name: str = "gpulane-dev") -> str:
    """A kubeconfig with the CA and admin client certificate embedded, so it can be copied anywhere."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(certs.ca_cert)}}],
        "users": [
            {
                "name": pkimod.ADMIN_USER,
                "user": {
                    "client-certificate-data": b64(certs.admin_cert),
                    "client-key-data": b64(certs.admin_key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": pkimod.ADMIN_USER, "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def kwok_config_text() -> str:
    """kwok's configuration: its node and pod Stages (standalone kwok has no defaults).

    No KwokConfiguration document on purpose: kwok defaults its options (parallelism, ...) only when
    it creates that document itself.
    """
    return importlib.resources.files("gpulane_dev").joinpath(KWOK_STAGES_RESOURCE).read_text()


def http_ok(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    """True when GET `url` answers 200 with body "ok" (etcd: a healthy JSON)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S, context=context) as response:
            body = response.read().decode(errors="replace").strip()
            return bool(response.status == 200 and (body == "ok" or '"health":"true"' in body))
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


@dataclass(slots=True)
class ControlPlane:
    """A running control plane. Use `start()`; `stop()` (or the context manager) ends every process."""

    options: ControlPlaneOptions
    pki: pkimod.Pki
    kubeconfig: Path
    timings: StartupTimings
    _ports: _Ports
    _etcd: procs.Supervised
    _apiserver: procs.Supervised
    _kwok: procs.Supervised | None = None
    _stopped: bool = field(default=False)

    @classmethod
    def start(cls, options: ControlPlaneOptions) -> ControlPlane:
        """Start etcd, then kube-apiserver, then kwok (if configured); stop whatever started on failure.

        Free ports are picked by binding port 0 and releasing it, so another process can take one in
        between; that case ("address already in use") is retried with fresh ports.
        """
        ports_given = any((options.etcd_port, options.etcd_peer_port, options.apiserver_port))
        for attempt in range(_PORT_ATTEMPTS):
            try:
                return cls._start_once(options)
            except procs.StartupFailed as exc:
                if ports_given or "address already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                shutil.rmtree(options.workdir / "etcd-data", ignore_errors=True)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @classmethod
    def _start_once(cls, options: ControlPlaneOptions) -> ControlPlane:
        started = time.monotonic()
        workdir = options.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        certs = pkimod.generate(workdir / "pki")
        ports = _Ports(
            etcd=options.etcd_port or procs.free_port(),
            etcd_peer=options.etcd_peer_port or procs.free_port(),
            apiserver=options.apiserver_port or procs.free_port(),
        )
        running: list[procs.Supervised] = []
        try:
            etcd = procs.start(
                procs.ProcessSpec("etcd", etcd_argv(options.etcd, workdir / "etcd-data", ports.etcd, ports.etcd_peer),
                                  workdir / "logs" / "etcd.log"),
                die_with_parent=options.die_with_parent,
            )  # fmt: skip
            running.append(etcd)
            etcd_s = procs.wait_until(
                lambda: http_ok(f"http://127.0.0.1:{ports.etcd}/health"),
                what="etcd /health", timeout=options.start_timeout_s, watch=[etcd],
            )  # fmt: skip
            apiserver = procs.start(_apiserver_spec(options, certs, ports), die_with_parent=options.die_with_parent)
            running.append(apiserver)
            kubeconfig = workdir / "kubeconfig"
            kubeconfig.write_text(kubeconfig_text(f"https://127.0.0.1:{ports.apiserver}", certs))
            kubeconfig.chmod(0o600)
            api_s = _wait_apiserver(options, certs, ports, [etcd, apiserver])
            plane = cls(
                options=options, pki=certs, kubeconfig=kubeconfig,
                timings=StartupTimings(etcd_s, api_s, time.monotonic() - started),
                _ports=ports, _etcd=etcd, _apiserver=apiserver,
            )  # fmt: skip
            if options.kwok is not None:
                config = workdir / "kwok.yaml"
                config.write_text(kwok_config_text())
                kwok_log = workdir / "logs" / "kwok.log"
                kwok = procs.start(
                    procs.ProcessSpec("kwok", kwok_argv(options.kwok, kubeconfig, config), kwok_log),
                    die_with_parent=options.die_with_parent,
                )  # fmt: skip
                running.append(kwok)
                plane._kwok = kwok
                # kwok has no health endpoint here; it logs this once its node informer is set up.
                procs.wait_until(
                    lambda: KWOK_READY_LINE in procs.log_tail(kwok_log),
                    what="kwok to watch nodes", timeout=options.start_timeout_s, watch=[kwok],
                )  # fmt: skip
            return plane
        except BaseException:
            for proc in reversed(running):
                proc.stop(timeout=5.0)
            raise

    # --- what tests and tools read -------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._ports.etcd}"

    @property
    def credentials(self) -> AdminCredentials:
        return AdminCredentials(
            user=pkimod.ADMIN_USER, groups=(pkimod.ADMIN_GROUP,),
            client_cert=self.pki.admin_cert, client_key=self.pki.admin_key, ca_cert=self.pki.ca_cert,
            token=self.pki.admin_token,
        )  # fmt: skip

    def processes(self) -> list[procs.Supervised]:
        return [p for p in (self._etcd, self._apiserver, self._kwok) if p is not None]

    def records(self) -> list[procs.ProcessRecord]:
        return [p.record() for p in self.processes()]

    def ready(self) -> bool:
        return _apiserver_ready(self.pki, self._ports)

    # --- lifecycle ----------------------------------------------------------------------------

    def restart_apiserver(self, grace_s: float = 5.0) -> float:
        """Stop kube-apiserver and start it again on the same port and etcd; return seconds to ready.

        Like a rollout: SIGTERM, then SIGKILL after `grace_s` (a graceful apiserver waits for open
        watches to finish, which a test's watch never does). Watches break; clients must reconnect.
        """
        started = time.monotonic()
        self._apiserver.stop(timeout=grace_s)
        self._apiserver = procs.start(
            _apiserver_spec(self.options, self.pki, self._ports), die_with_parent=self.options.die_with_parent
        )
        _wait_apiserver(self.options, self.pki, self._ports, [self._etcd, self._apiserver])
        return time.monotonic() - started

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop kwok, kube-apiserver and etcd, in that order (SIGKILL after `grace_s`). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        errors: list[BaseException] = []
        for proc in reversed(self.processes()):
            try:
                proc.stop(timeout=grace_s)
            except Exception as exc:  # keep stopping the others, report afterwards
                errors.append(exc)
        if errors:
            raise RuntimeError(f"stopping the control plane: {errors}")

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _apiserver_spec(options: ControlPlaneOptions, certs: pkimod.Pki, ports: _Ports) -> procs.ProcessSpec:
    argv = apiserver_argv(options.kube_apiserver, certs, ports.apiserver, ports.etcd, options.workdir / "apiserver-certs",
                          real_nodes=options.real_nodes)  # fmt: skip
    return procs.ProcessSpec("kube-apiserver", argv, options.workdir / "logs" / "kube-apiserver.log")


def _ssl_context(certs: pkimod.Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_cert))


def _apiserver_ready(certs: pkimod.Pki, ports: _Ports) -> bool:
    return http_ok(f"https://127.0.0.1:{ports.apiserver}/readyz", context=_ssl_context(certs), token=certs.admin_token)


def _wait_apiserver(options: ControlPlaneOptions, certs: pkimod.Pki, ports: _Ports, watch: list[procs.Supervised]) -> float:
    return procs.wait_until(
        lambda: _apiserver_ready(certs, ports),
        what=f"kube-apiserver /readyz on port {ports.apiserver}", timeout=options.start_timeout_s, watch=watch,
    )  # fmt: skip
