"""Every panel query of every shipped dashboard returns data from a real Prometheus scraping gpulane.

Both components run as the chart configures them: the chart is rendered with the real helm, its
ServiceAccounts, ClusterRoles, bindings and peering object are created on the shared control plane
(kube-apiserver + etcd + kwok), and each component talks to the apiserver with a token of its own
ServiceAccount (TokenRequest API), so the chart's least-privilege RBAC must be enough for real work. The
operator is a real `gpulane operator` subprocess with the Deployment's rendered args and the settings
ConfigMap's file (kopf peering on). The node agent runs in this process (the real `Agent`, its HTTP exporter,
its Kubernetes client and its lane coordinator), configured from the DaemonSet's rendered args and
environment (host paths moved into a scratch directory), on a `FakeBackend`, because GPU processes can only be
scripted on a fake backend from inside its own process: that is what gives per-pod memory and a lane
violation. Its proc root is a scratch directory holding `/proc/<pid>/cgroup` files for those pids, so the
agent's own cgroup attribution maps them to the jobs' pods. Two `gpulane_client.Lane`s take turns in a
lane for the turn and prefetch metrics. A real Prometheus (gpulane_dev.prometheus) scrapes both every
second; each query is evaluated with the dashboards' variables set to real values (this node, a used GPU,
this namespace, a running pod) and must return a non-empty result. It runs in both of the agent's metrics
modes: the default (only gpulane_* families) and --dcgm-compat (chart value nodeAgent.metrics.dcgmCompat).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from charthelm import KIND_VALUES, render
from gpulane_agent.agent import Agent
from gpulane_agent.cli import flags_from_args
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.fake_spec import parse_spec
from gpulane_agent.kube.client import connect
from gpulane_agent.settings import load_config
from gpulane_client.lane import Lane, LaneConfig
from gpulane_core.cli import build_parser
from gpulane_dev.binaries import Binaries
from gpulane_dev.controlplane import ControlPlane
from gpulane_dev.procs import free_port
from gpulane_dev.prometheus import PrometheusError, RealPrometheus
from gpulane_operator.names import GPUNODES, GROUP, VERSION
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from opharness import POOL_LABEL, create_job, job_manifest, pods_by_job, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GPU_MIB = 16384


def _load_dashboard_queries() -> Any:
    """The unit tier's reader of the dashboards (one definition of the queries and the substitution)."""
    import importlib.util

    path = ROOT / "tests" / "unit" / "chart" / "dashboard_queries.py"
    spec = importlib.util.spec_from_file_location("gpulane_dashboard_queries", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


dq = _load_dashboard_queries()


class AgentThread:
    """The node agent's asyncio loop on a thread; stopped by cancelling its run task."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="gpulane-agent", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.agent.run())
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.loop.close()

    def start(self) -> AgentThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.task is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=20)


@dataclass(frozen=True)
class RenderedOperator:
    settings_yaml: str  # the settings ConfigMap's file
    args: list[str]  # the operator container's args, as rendered
    agent_args: list[str]  # the node agent container's args, as rendered
    agent_env: dict[str, str]  # its literal (not downward-API) environment
    fake_config: str  # the fake-backend ConfigMap's file


def install_chart_identities(
    helm: Path, api: client.ApiClient, namespace: str, release: str, extra: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], RenderedOperator]:
    """Create the chart's ServiceAccounts, RBAC and peering object; return them and the operator's config."""
    rendered = render(helm, release, namespace, ("-f", str(KIND_VALUES), "--set", "operator.watchNamespaces={NAMESPACE}",
                                                 "--set", f"operator.peering.name={release}", *extra))
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "KopfPeering"}
    docs = [d for d in rendered if d["kind"] in wanted]
    settings = next(d for d in rendered if d["metadata"]["name"].endswith("-operator-settings"))
    workload = next(d for d in rendered if d["kind"] == "Deployment")
    args = list(workload["spec"]["template"]["spec"]["containers"][0]["args"])
    agent = next(d for d in rendered if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    fake = next(d for d in rendered if d["metadata"]["name"].endswith("-fake-config"))
    dyn = DynamicClient(api)  # type: ignore[no-untyped-call]
    for doc in docs:
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.create(body=doc, namespace=namespace if resource.namespaced else None)
    env = {e["name"]: str(e["value"]) for e in agent.get("env", []) if "value" in e}
    return docs, RenderedOperator(
        str(settings["data"]["settings.yaml"]), args, list(agent["args"]), env, str(fake["data"]["fake-gpus.yaml"]))


def remove_cluster_scoped(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    for doc in docs:
        with contextlib.suppress(client.exceptions.ApiException):
            if doc["kind"] == "ClusterRole":
                rbac.delete_cluster_role(doc["metadata"]["name"])
            elif doc["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(doc["metadata"]["name"])


def service_account_kubeconfig(
    api: client.ApiClient, control_plane: ControlPlane, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token from the TokenRequest API)."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    answer = client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request)
    token = str(answer.status.token)  # type: ignore[union-attr]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": control_plane.server,
                                              "certificate-authority": str(control_plane.credentials.ca_cert)}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": account, "namespace": namespace}}],
    }))  # fmt: skip
    path.chmod(0o600)
    return path


def take_turns(socket_path: str, lane: str, job_name: str, turns: int) -> None:
    with Lane(LaneConfig(socket_path=socket_path, lane=lane, job=job_name, iteration_estimate_s=0.02)) as handle:
        for _ in range(turns):
            with handle.turn():
                time.sleep(0.02)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gl-dash-", dir="/tmp"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


# The agent's two metrics modes: by default the hardware panels fall back to its gpulane_gpu_* gauges (no
# dcgm-exporter here); with --dcgm-compat they read the DCGM_FI_DEV_* series the agent then serves.
@pytest.mark.parametrize("dcgm_compat", [False, True], ids=["default", "dcgm-compat"])
def test_every_panel_query_returns_data(
    dcgm_compat: bool,
    crds: list[str],
    dev_binaries: Binaries,
    control_plane: ControlPlane,
    kubeconfig: Path,
    kube_api: client.ApiClient,
    namespace: str,
    fake_gpu_nodes: Callable[..., list[str]],
    workdir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = fake_gpu_nodes(1, gpus_per_node=2, gpu_memory_mib=GPU_MIB)[0]
    pool = f"dash-{namespace[-6:]}"
    client.CoreV1Api(kube_api).patch_node(node, {"metadata": {"labels": {POOL_LABEL: pool}}})
    release = f"d{namespace[-6:]}"
    identities, rendered = install_chart_identities(
        dev_binaries.helm, kube_api, namespace, release, ("--set", f"nodeAgent.metrics.dcgmCompat={str(dcgm_compat).lower()}"))
    try:
        _run_everything(
            dev_binaries, control_plane, kube_api, namespace, node, pool, release, rendered, workdir, caplog)
    finally:
        remove_cluster_scoped(kube_api, identities)


def _run_everything(
    dev_binaries: Binaries, control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, node: str,
    pool: str, release: str, rendered: RenderedOperator, workdir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    operator_kubeconfig = service_account_kubeconfig(
        kube_api, control_plane, namespace, f"{release}-gpulane-operator", workdir / "operator.kubeconfig")
    agent_kubeconfig = service_account_kubeconfig(
        kube_api, control_plane, namespace, f"{release}-gpulane-node-agent", workdir / "agent.kubeconfig")
    settings_file = workdir / "settings.yaml"
    settings_file.write_text(rendered.settings_yaml)
    liveness_port = free_port()

    # -- node agent (in process, fake GPUs) ------------------------------------------------------
    agent_port, operator_port = free_port(), free_port()
    proc_root = workdir / "proc"
    proc_root.mkdir()
    # the chart's args and environment, with host paths moved under workdir and a free port
    (workdir / "agent-config").mkdir()
    (workdir / "agent-config" / "fake-gpus.yaml").write_text(rendered.fake_config)
    moves = {"$(NODE_NAME)": node, "/etc/gpulane/agent": str(workdir / "agent-config"),
             "/var/lib/kubelet/device-plugins": str(workdir / "dp"), "/var/run/gpulane": str(workdir / "co")}
    agent_args = []
    for arg in rendered.agent_args:
        for old, new in moves.items():
            arg = arg.replace(old, new)
        agent_args.append(arg)
    parsed = build_parser().parse_args([*agent_args, "--metrics-port", str(agent_port),
                                        "--kubeconfig", str(agent_kubeconfig)])
    assert rendered.agent_env["GPULANE_AGENT_ENFORCEMENT_PROC_ROOT"] == "/host/proc"
    env = {**rendered.agent_env, "GPULANE_AGENT_ENFORCEMENT_PROC_ROOT": str(proc_root),
           "GPULANE_AGENT_ENFORCEMENT_INTERVAL_S": "0.5", "GPULANE_AGENT_INVENTORY_HEARTBEAT_S": "2"}
    config = load_config(None, env, flags_from_args(parsed))
    assert config.backend.kind.value == "fake" and config.node_name == node
    dcgm_compat = "--dcgm-compat" in rendered.agent_args
    assert config.metrics.dcgm_compat is dcgm_compat
    # two working GPUs for the jobs, and a third that is lost (unhealthy, so never used; every reading
    # of it fails, which feeds the backend-error and health panels)
    backend = FakeBackend(parse_spec({
        "version": "v1",
        "gpus": [{"model": "Fake-GPU-16G", "memory": "16Gi", "count": 3, "utilization": 0.5}],
        "faults": [{"gpu": 2, "kind": "lost"}],
    }, node))  # fmt: skip

    async def kube_factory() -> Any:
        return await connect(str(agent_kubeconfig))

    agent = AgentThread(Agent(config, backend, kube_factory)).start()
    operator_log = workdir / "operator.log"
    operator: subprocess.Popen[bytes] | None = None
    prom: RealPrometheus | None = None
    try:
        wait_for("the agent's GPUNode", lambda: _gpunode(custom, node))

        # -- operator (real CLI subprocess): the chart's args, settings file and ServiceAccount -------
        # (added flags override the file: a free metrics port, and this test's node only)
        args = [a.replace("/etc/gpulane/operator/settings.yaml", str(settings_file))
                 .replace("0.0.0.0:8081", f"127.0.0.1:{liveness_port}") for a in rendered.args]
        argv = [sys.executable, "-m", "gpulane_core.cli", *args,
                "--node-selector", f"{POOL_LABEL}={pool}", "--metrics-port", str(operator_port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "KUBECONFIG": str(operator_kubeconfig), "POD_ID": release}
        with operator_log.open("wb") as out:
            operator = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)

        prom = RealPrometheus.start([f"127.0.0.1:{agent_port}", f"127.0.0.1:{operator_port}"], workdir / "prom",
                                    binary=dev_binaries.prometheus)
        prom.wait_for("up == 1", timeout=30)
        # the probe endpoint the chart's liveness and readiness probes use
        wait_for("the operator's /healthz", lambda: _http_ok(f"http://127.0.0.1:{liveness_port}/healthz"))

        # -- jobs: four share two GPUs' lanes, one finishes (kwok completes its pod), one never fits --
        for i in range(4):
            create_job(kube_api, namespace, job_manifest(f"share-{i}", "2Gi", "6Gi"))
        create_job(kube_api, namespace, job_manifest(
            "quick", "512Mi", "1Gi", pod_annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "3s"}))
        create_job(kube_api, namespace, job_manifest("too-big", "40Gi", "8Gi"))
        pods = wait_for("four running shared pods", lambda: _shared_running(kube_api, namespace, node), timeout=90)

        # -- GPU processes of two pods (one over its lane limit) and turns in one lane --------------
        for pid, pod in enumerate(pods[:2], start=4001):
            annotations = pod.metadata.annotations
            limit = int(annotations["gpulane.dev/memory-limit-mib"])
            used = limit + 512 if pid == 4002 else limit // 2
            (proc_root / str(pid)).mkdir()
            (proc_root / str(pid) / "cgroup").write_text(f"0::/kubepods/burstable/pod{pod.metadata.uid}/{'a' * 64}\n")
            backend.register_process(int(annotations["gpulane.dev/gpu-index"].split(",")[0]), pid, used)
        first = pods[0].metadata.annotations
        lane = f"{first['gpulane.dev/gpu-uuid'].split(',')[0]}/{first['gpulane.dev/lane']}"
        socket_path = str(workdir / "co" / "coordinator.sock")
        turners = [threading.Thread(target=take_turns, args=(socket_path, lane, f"{namespace}/t{i}", 6))
                   for i in range(2)]
        for t in turners:
            t.start()
        for t in turners:
            t.join(timeout=60)

        values = {
            "gpulane-cluster-overview.json": {"Hostname": node},
            # the GPU of the first pod with a process, so the per-pod panels have something to show
            "gpulane-node-gpu.json": {"Hostname": node, "gpu": first["gpulane.dev/gpu-index"].split(",")[0]},
            # the pod over its limit: it has memory, a lane, a GPU and a violation to show
            "gpulane-job.json": {"namespace": namespace, "pod": pods[1].metadata.name},
        }
        empty = _evaluate_until_all_have_data(prom, values, timeout=120)
        # the hardware panels read the DCGM_FI_DEV_* series exactly when the agent serves them
        assert bool(prom.query("DCGM_FI_DEV_GPU_TEMP")) is dcgm_compat
        assert agent.error is None, agent.error
        # the chart's RBAC was enough: neither component was refused anything along the way
        assert "Forbidden" not in operator_log.read_text(errors="replace"), _tail(operator_log)
        refused = [r.getMessage() for r in caplog.records if "403" in r.getMessage() or "Forbidden" in r.getMessage()]
        assert refused == []
        assert empty == [], "panel queries without data:\n" + "\n".join(empty) + "\n" + _tail(operator_log)
    finally:
        if prom is not None:
            prom.stop()
        if operator is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(operator.pid, 15)
            operator.wait(timeout=20)
        agent.stop()


def _gpunode(custom: client.CustomObjectsApi, node: str) -> dict[str, Any] | None:
    try:
        obj = cast(dict[str, Any], custom.get_cluster_custom_object(GROUP, VERSION, GPUNODES, node))
    except client.exceptions.ApiException:
        return None
    return obj if (obj.get("status") or {}).get("gpus") else None


def _shared_running(api: client.ApiClient, namespace: str, node: str) -> list[Any] | None:
    pods = [p for name, of_job in pods_by_job(api, namespace).items() if name.startswith("share-") for p in of_job
            if p.spec.node_name == node and p.status and p.status.phase == "Running"]
    return sorted(pods, key=lambda p: p.metadata.name) if len(pods) == 4 else None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def _evaluate_until_all_have_data(prom: RealPrometheus, values: dict[str, dict[str, str]], timeout: float) -> list[str]:
    """Evaluate every panel and variable query until each has data; return those that never did."""
    pending: dict[str, str] = {}
    for name, dashboard in dq.load_dashboards().items():
        for query in dq.panel_queries(name, dashboard):
            pending[str(query)] = dq.substitute(query.expr, values[name])
        for var in dq.variable_queries(name, dashboard):
            selector = dq.substitute(var.selector, values[name])
            pending[f"{name} / variable {var.name}"] = f"count by ({var.label}) ({selector})"
    assert len(pending) > 40
    deadline = time.monotonic() + timeout
    errors: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for query_id, promql in list(pending.items()):
            try:
                if prom.query(promql):
                    del pending[query_id]
            except PrometheusError as exc:  # a query Prometheus rejects will never have data
                errors[query_id] = str(exc)
                del pending[query_id]
        if pending:
            time.sleep(1.0)
    return [f"{q}: {pending[q]}" for q in sorted(pending)] + [f"{q}: ERROR {e}" for q, e in sorted(errors.items())]
