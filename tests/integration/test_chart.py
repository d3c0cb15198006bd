"""The Helm chart against the real helm binary and a real kube-apiserver.

`helm lint` and `helm template` run for the default, kind (fake backend) and monitoring values; the
rendered objects are then *created* (not dry-run) on the shared control plane, the chart goes through a
real `helm install` / `upgrade` / `uninstall`, and the apiserver's own SubjectAccessReview checks the
RBAC it installs. ServiceMonitor/PodMonitor/PrometheusRule need the Prometheus Operator's CRDs: this
module installs a minimal structural stand-in for those three `monitoring.coreos.com/v1` kinds (group,
kinds and scope as upstream; the schema keeps unknown fields), and removes them at the end.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from charthelm import CHART, KIND_VALUES, KUBE_VERSION, render, run_helm
from gpulane_dev import crds as crdmod
from gpulane_dev.binaries import Binaries
from gpulane_dev.controlplane import ControlPlane
from gpulane_dev.kubeclient import connected
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

pytestmark = pytest.mark.integration

MONITORING = ("--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.podMonitor.enabled=true",
              "--set", "monitoring.prometheusRule.enabled=true")
VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "kind-fake-backend": ("-f", str(KIND_VALUES)),
    "monitoring": ("-f", str(KIND_VALUES), *MONITORING),
    "namespaced-ha": ("--set", "operator.replicas=2", "--set", "operator.watchNamespaces={NAMESPACE}"),
    "dcgm-compat": ("--set", "nodeAgent.metrics.dcgmCompat=true"),
    "dra": ("--set", "nodeAgent.allocation=dra"),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", "CustomResourceDefinition", "DeviceClass",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}  # fmt: skip
WORKLOADS = {"Deployment", "StatefulSet"}


@pytest.fixture(scope="module")
def helm_bin(dev_binaries: Binaries) -> Path:
    return dev_binaries.helm


def as_dict(api: client.ApiClient, obj: object) -> dict[str, Any]:
    """A typed client model as the plain JSON dict the apiserver sent."""
    return cast(dict[str, Any], api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


def monitoring_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com", "labels": {"test": "gpulane-chart"}},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }},
            }],
        },
    }


def create_crds(api: client.ApiClient, docs: Sequence[dict[str, Any]]) -> None:
    """Create (or re-apply: the shared `crds` fixture installed the chart's already) and wait until served."""
    crdmod.wait_established(api, crdmod.apply(api, docs))


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> Iterator[None]:
    docs = [monitoring_crd("ServiceMonitor", "servicemonitors"), monitoring_crd("PodMonitor", "podmonitors"),
            monitoring_crd("PrometheusRule", "prometheusrules")]
    with connected(control_plane.kubeconfig) as api:
        create_crds(api, docs)
    yield
    with connected(control_plane.kubeconfig) as api:
        ext = client.ApiextensionsV1Api(api)
        for doc in docs:
            ext.delete_custom_resource_definition(doc["metadata"]["name"])


def resource_for(dyn: DynamicClient, doc: dict[str, Any]) -> Any:
    return dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])


# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_is_clean(helm_bin: Path, variant: str) -> None:
    args = [a.replace("NAMESPACE", "gpulane") for a in VARIANTS[variant]]
    out = run_helm(helm_bin, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_template_renders(helm_bin: Path, variant: str) -> None:
    docs = render(helm_bin, "gl", "gpulane", VARIANTS[variant])
    kinds = sorted({d["kind"] for d in docs})
    assert {"DaemonSet", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Service",
            "ConfigMap", "CustomResourceDefinition"} <= set(kinds)
    assert set(kinds) & WORKLOADS == ({"StatefulSet"} if variant == "namespaced-ha" else {"Deployment"})
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert {"gpusharejobs.gpulane.dev", "gpunodes.gpulane.dev", "clusterkopfpeerings.kopf.dev"} <= crds
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(dashboards) == 3
    monitors = {d["kind"] for d in docs} & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert monitors == ({"ServiceMonitor", "PodMonitor", "PrometheusRule"} if variant == "monitoring" else set())
    assert [p for d in docs for p in _null_paths(d, d["kind"])] == []  # a null is a template slip
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    fake = variant in ("kind-fake-backend", "monitoring")
    assert ("--backend=fake" in args) is fake
    assert ("--dcgm-compat" in args) is (variant == "dcgm-compat")
    assert any(d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-fake-config") for d in docs) is fake


def _null_paths(node: Any, path: str) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _null_paths(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _null_paths(v, f"{path}[{i}]")]
    return [path] if node is None else []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("--set", "operator.bogus=1"), "additional properties 'bogus' not allowed"),
        (("--set", "nodeAgent.backend=cuda"), "nodeAgent/backend"),
        (("--set", "operator.replicas=2", "--set", "operator.peering.enabled=false"), "peering/enabled"),
        (("--set", "operator.ordering=random"), "operator/ordering"),
        (("--set", "nodeAgent.fakeConfig.gpus[0].utilization=2"), "utilization"),
        (("--set", "nodeAgent.fakeConfig.gpus[0].power_watts=-1"), "power_watts"),
        (("--set", "nodeAgent.metrics.dcgmCompat=sometimes"), "dcgmCompat"),
        (("--set", "monitoring.serviceMonitor.interval=soon"), "serviceMonitor/interval"),
    ],
)
def test_schema_rejects_bad_values(helm_bin: Path, sets: tuple[str, ...], message: str) -> None:
    out = run_helm(helm_bin, "template", "gl", str(CHART), *sets, check=False)
    assert "values don't meet the specifications of the schema" in out, out
    assert message in out, out


def test_rbac_has_no_wildcards_and_grants_exactly_the_listed_rules(helm_bin: Path) -> None:
    docs = render(helm_bin, "gl", "gpulane", VARIANTS["default"])
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for role in roles.values():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
    agent = {(g, r): set(rule["verbs"]) for rule in roles["gl-gpulane-node-agent"]["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert agent == {
        ("gpulane.dev", "gpunodes"): {"get", "create"},
        ("gpulane.dev", "gpunodes/status"): {"patch"},
        ("", "pods"): {"list", "patch"},
        ("", "pods/eviction"): {"create"},
        ("", "events"): {"create"},
    }
    operator = {(g, r): set(rule["verbs"]) for rule in roles["gl-gpulane-operator"]["rules"]
                for g in rule["apiGroups"] for r in rule["resources"]}
    assert operator == {
        ("gpulane.dev", "gpusharejobs"): {"get", "list", "watch", "patch"},
        ("gpulane.dev", "gpusharejobs/status"): {"patch"},
        ("gpulane.dev", "gpusharejobs/finalizers"): {"update"},
        ("gpulane.dev", "gpunodes"): {"list", "watch"},
        ("", "pods"): {"create", "get", "list", "watch", "delete"},
        ("", "pods/binding"): {"create"},
        ("", "nodes"): {"list", "watch"},
        ("", "events"): {"create"},
        ("resource.k8s.io", "resourceclaims"): {"create", "get", "list", "watch", "delete"},
        ("resource.k8s.io", "resourceclaims/status"): {"patch"},
        ("resource.k8s.io", "resourceclaims/binding"): {"patch"},
        ("resource.k8s.io", "resourceslices"): {"get", "list", "watch"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
        ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    }


def test_dra_and_both_modes_refuse_a_cluster_older_than_1_36_with_a_clear_error(helm_bin: Path) -> None:
    for mode in ("dra", "both"):
        out = run_helm(helm_bin, "template", "gl", str(CHART), "--kube-version", "1.35.4",
                       "--set", f"nodeAgent.allocation={mode}", check=False)  # fmt: skip
        assert f"nodeAgent.allocation={mode} needs Kubernetes >= 1.36" in out and "v1.35.4" in out, out
    # device-plugin mode keeps the chart's kubeVersion (>= 1.27)
    assert "kind: DaemonSet" in run_helm(helm_bin, "template", "gl", str(CHART), "--kube-version", "1.27.0")


def test_dra_mode_renders_the_device_class_mounts_and_rbac_and_turns_the_device_plugin_off(helm_bin: Path) -> None:
    docs = render(helm_bin, "gl", "gpulane", VARIANTS["dra"])
    [device_class] = [d for d in docs if d["kind"] == "DeviceClass"]
    assert device_class["metadata"]["name"] == "gpu.gpulane.dev"
    assert device_class["spec"]["selectors"] == [{"cel": {"expression": 'device.driver == "gpu.gpulane.dev"'}}]
    default_kinds = {d["kind"] for d in render(helm_bin, "gl", "gpulane", VARIANTS["default"])}
    assert not default_kinds & {"DeviceClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    # Only the operator allocates gpu.gpulane.dev devices (its behaviour: test_dra_ownership.py).
    [policy] = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    [binding] = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert (binding["spec"]["policyName"], binding["spec"]["validationActions"]) == (policy["metadata"]["name"], ["Deny"])
    [validation] = policy["spec"]["validations"]
    assert validation["expression"].endswith(
        'request.userInfo.username in ["system:serviceaccount:gpulane:gl-gpulane-operator"]')
    [daemonset] = [d for d in docs if d["kind"] == "DaemonSet"]
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["GPULANE_AGENT_DRA_ENABLED"], env["GPULANE_AGENT_DEVICE_PLUGIN_ENABLED"]) == ("true", "false")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry", "/var/run/cdi"} <= mounts
    [role] = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "gl-gpulane-node-agent"]
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules[("resource.k8s.io", "resourceclaims")] == {"get"}
    assert rules[("resource.k8s.io", "resourceslices")] == {"get", "create", "update", "delete"}
    assert rules[("", "nodes")] == {"get"}


@pytest.mark.usefixtures("crds", "monitoring_crds")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_objects_are_created_on_the_apiserver(
    helm_bin: Path, kube_api: client.ApiClient, namespace: str, variant: str
) -> None:
    release = f"r{uuid.uuid4().hex[:6]}"
    extra = (*VARIANTS[variant], "--set", f"operator.peering.name={release}")
    docs = render(helm_bin, release, namespace, extra)
    create_crds(kube_api, [d for d in docs if d["kind"] == "CustomResourceDefinition"])
    dyn = DynamicClient(kube_api)  # type: ignore[no-untyped-call]
    created: list[tuple[Any, dict[str, Any]]] = []
    try:
        for doc in (d for d in docs if d["kind"] != "CustomResourceDefinition"):
            resource = resource_for(dyn, doc)
            ns = doc["metadata"].get("namespace", namespace) if resource.namespaced else None
            if doc["kind"] == "ValidatingAdmissionPolicyBinding":
                # Validated but not stored: a binding in force would refuse the admin's claim allocations in
                # later modules until the apiserver noticed its deletion (test_dra_ownership.py enforces it).
                resource.create(body=doc, namespace=ns, dry_run="All")
                created.append((resource, doc))
                with pytest.raises(NotFoundError):
                    resource.get(name=doc["metadata"]["name"])
                continue
            resource.create(body=doc, namespace=ns)
            created.append((resource, doc))
            got = resource.get(name=doc["metadata"]["name"], namespace=ns)
            assert got.metadata.labels["app.kubernetes.io/instance"] == release
        assert len(created) == len(docs) - sum(d["kind"] == "CustomResourceDefinition" for d in docs)
    finally:
        for resource, doc in reversed(created):
            if doc["kind"] in CLUSTER_SCOPED and doc["kind"] != "ValidatingAdmissionPolicyBinding":
                resource.delete(name=doc["metadata"]["name"])


def _allowed(api: client.ApiClient, user: str, verb: str, resource: str, group: str = "", ns: str = "x") -> bool:
    resource, _, sub = resource.partition("/")
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user, groups=["system:serviceaccounts", "system:authenticated"],
        resource_attributes=client.V1ResourceAttributes(
            verb=verb, group=group, resource=resource, subresource=sub or None, namespace=ns),
    ))
    answer = as_dict(api, client.AuthorizationV1Api(api).create_subject_access_review(review))
    return bool(answer["status"].get("allowed", False))


@pytest.mark.usefixtures("crds", "monitoring_crds")
def test_helm_install_upgrade_uninstall(
    helm_bin: Path, kube_api: client.ApiClient, kubeconfig: Path, namespace: str
) -> None:
    release = f"i{uuid.uuid4().hex[:6]}"
    common = ("--namespace", namespace, "--set", f"operator.peering.name={release}")
    out = run_helm(helm_bin, "install", release, str(CHART), *common, "-f", str(KIND_VALUES), *MONITORING,
                   kubeconfig=kubeconfig)
    assert "STATUS: deployed" in out
    assert "Node agent (backend=fake)" in out and "kubectl get gpunodes" in out, out  # NOTES.txt
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    deployment = as_dict(kube_api, apps.read_namespaced_deployment(f"{release}-gpulane-operator", namespace))
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/settings"]
    settings = as_dict(kube_api, core.read_namespaced_config_map(f"{release}-gpulane-operator-settings", namespace))
    assert "ordering: fifo" in settings["data"]["settings.yaml"]
    apps.read_namespaced_daemon_set(f"{release}-gpulane-node-agent", namespace)

    operator_sa = f"system:serviceaccount:{namespace}:{release}-gpulane-operator"
    agent_sa = f"system:serviceaccount:{namespace}:{release}-gpulane-node-agent"
    assert _allowed(kube_api, operator_sa, "create", "pods/binding")
    assert _allowed(kube_api, operator_sa, "patch", "gpusharejobs/status", "gpulane.dev")
    assert _allowed(kube_api, operator_sa, "patch", "clusterkopfpeerings", "kopf.dev", ns="")
    assert not _allowed(kube_api, operator_sa, "get", "secrets")
    assert not _allowed(kube_api, operator_sa, "delete", "nodes", ns="")
    assert _allowed(kube_api, agent_sa, "patch", "gpunodes/status", "gpulane.dev", ns="")
    assert _allowed(kube_api, agent_sa, "create", "pods/eviction")
    assert not _allowed(kube_api, agent_sa, "create", "pods/binding")
    assert not _allowed(kube_api, agent_sa, "delete", "pods")

    out = run_helm(helm_bin, "upgrade", release, str(CHART), *common, "-f", str(KIND_VALUES), *MONITORING,
                   "--set", "operator.ordering=fair", kubeconfig=kubeconfig)
    assert re.search(r"REVISION: 2", out), out
    settings = as_dict(kube_api, core.read_namespaced_config_map(f"{release}-gpulane-operator-settings", namespace))
    assert "ordering: fair" in settings["data"]["settings.yaml"]
    deployment = as_dict(kube_api, apps.read_namespaced_deployment(f"{release}-gpulane-operator", namespace))
    assert deployment["spec"]["template"]["metadata"]["annotations"]["checksum/settings"] != checksum

    run_helm(helm_bin, "uninstall", release, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    with pytest.raises(ApiException) as gone:
        rbac.read_cluster_role(f"{release}-gpulane-operator")
    assert gone.value.status == 404
    # CRDs stay (helm never deletes crds/), so users' GPUShareJobs survive an uninstall.
    client.ApiextensionsV1Api(kube_api).read_custom_resource_definition("gpusharejobs.gpulane.dev")


def _container(docs: Sequence[dict[str, Any]], kinds: set[str]) -> dict[str, Any]:
    workload = next(d for d in docs if d["kind"] in kinds)
    return cast(dict[str, Any], workload["spec"]["template"]["spec"]["containers"][0])


def _literal_env(container: dict[str, Any], fields: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet would give it (downward-API fields from ``fields``)."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_commands_are_accepted_by_the_real_clis(helm_bin: Path, variant: str, tmp_path: Path) -> None:
    """The chart's args, env and settings file go through the operator's and agent's own parsers."""
    from gpulane_agent.settings import load_config
    from gpulane_core.cli import build_parser
    from gpulane_operator.cli import flags_of
    from gpulane_operator.settings import load

    docs = render(helm_bin, "gl", "ns1", VARIANTS[variant])
    fields = {"metadata.name": "gl-gpulane-operator-1", "spec.nodeName": "gpu-node-1",
              "metadata.labels['apps.kubernetes.io/pod-index']": "1"}

    op = _container(docs, WORKLOADS)
    assert op["command"] == ["gpulane"]
    settings_cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-operator-settings"))
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(settings_cm["data"]["settings.yaml"])
    args = [a.replace("/etc/gpulane/operator/settings.yaml", str(settings_file)) for a in op["args"]]
    parsed = build_parser().parse_args(args)
    settings = load(settings_file.read_text(), _literal_env(op, fields), flags_of(parsed))
    assert settings.scheduling.ordering == "fifo" and settings.scheduling.placement == "gpulane"
    assert settings.metrics.port == op["ports"][0]["containerPort"]
    if variant == "namespaced-ha":
        assert settings.scope.namespaces == ("ns1",) and settings.peering.priority == 1
        assert not settings.peering.standalone

    agent = _container(docs, {"DaemonSet"})
    env = _literal_env(agent, fields)
    agent_args = [a.replace("$(NODE_NAME)", env["NODE_NAME"]) for a in agent["args"]]
    fake_cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-fake-config")]
    if fake_cm:
        (tmp_path / "fake-gpus.yaml").write_text(fake_cm[0]["data"]["fake-gpus.yaml"])
        agent_args = [a.replace("/etc/gpulane/agent", str(tmp_path)) for a in agent_args]
    agent_args = _with_agent_settings(docs, agent_args, tmp_path)
    parsed = build_parser().parse_args(agent_args)
    from gpulane_agent.cli import flags_from_args

    config = load_config(parsed.config, env, flags_from_args(parsed))
    assert config.node_name == "gpu-node-1"
    assert config.metrics.port == agent["ports"][0]["containerPort"]
    assert config.enforcement.proc_root == "/host/proc"
    assert config.coordinator.socket == "/var/run/gpulane/coordinator.sock"
    assert config.backend.kind.value == ("fake" if "--backend=fake" in agent_args else "nvml")
    assert config.metrics.dcgm_compat is (variant == "dcgm-compat")


def _with_agent_settings(docs: Sequence[dict[str, Any]], args: Sequence[str], tmp_path: Path) -> list[str]:
    """The agent's args with its mounted settings file replaced by a copy of the rendered ConfigMap."""
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-node-agent-settings"))
    (tmp_path / "agent-settings.yaml").write_text(cm["data"]["settings.yaml"])
    mounted = "--config=/etc/gpulane/node-agent/settings.yaml"
    assert mounted in args
    return [f"--config={tmp_path / 'agent-settings.yaml'}" if a == mounted else a for a in args]


def test_coordinator_turn_values_reach_the_coordinator(helm_bin: Path, tmp_path: Path) -> None:
    """nodeAgent.settings.coordinator.turns.* -> settings ConfigMap -> `gpulane agent --config` -> CoordinatorSettings."""
    from gpulane_agent.cli import flags_from_args
    from gpulane_agent.settings import load_config
    from gpulane_core.cli import build_parser
    from gpulane_core.ordering import OrderingPolicy

    sets = ("--set", "nodeAgent.settings.coordinator.turns.policy=fair", "--set-json", "nodeAgent.settings.coordinator.turns.window_s=12.5",
            "--set", "nodeAgent.settings.coordinator.turns.max_missed_deadlines=7",
            "--set", "nodeAgent.settings.coordinator.turns.round_policies={fair,weight}")  # fmt: skip
    docs = render(helm_bin, "gl", "ns1", sets)
    agent = _container(docs, {"DaemonSet"})
    env = _literal_env(agent, {"spec.nodeName": "gpu-node-1"})
    args = _with_agent_settings(docs, [a.replace("$(NODE_NAME)", env["NODE_NAME"]) for a in agent["args"]], tmp_path)
    parsed = build_parser().parse_args(args)
    coordinator = load_config(parsed.config, env, flags_from_args(parsed)).coordinator_settings()
    turns = coordinator.turns
    assert (turns.policy, turns.window_s, turns.max_missed_deadlines) == (OrderingPolicy.FAIR, 12.5, 7)
    assert turns.round_policies == {OrderingPolicy.FAIR, OrderingPolicy.WEIGHT} and turns.rounds
    assert coordinator.hostname == "gpu-node-1" and coordinator.validate() == []
    with pytest.raises(AssertionError, match="policy"):  # the schema refuses a policy the coordinator lacks
        render(helm_bin, "gl", "ns1", ("--set", "nodeAgent.settings.coordinator.turns.policy=lifo"))


def test_monitors_select_the_metrics_ports_and_dashboards_carry_the_json(helm_bin: Path) -> None:
    import json

    docs = render(helm_bin, "gl", "gpulane", VARIANTS["monitoring"])
    services = [d for d in docs if d["kind"] == "Service"]
    workloads = [d for d in docs if d["kind"] in WORKLOADS | {"DaemonSet"}]
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        hits = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(hits) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in hits[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    for monitor in (d for d in docs if d["kind"] == "PodMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        hits = [w for w in workloads if wanted.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(hits) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for c in hits[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    for monitor in (d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")):
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        agent = monitor["metadata"]["labels"]["app.kubernetes.io/component"] == "node-agent"
        # the agent's series carry the workloads' namespace/pod labels, which must survive the scrape
        assert all(e.get("honorLabels", False) is agent for e in endpoints), monitor["metadata"]["name"]
    for service in services:  # each Service selects exactly one workload's pods
        selector = service["spec"]["selector"]
        assert sum(selector.items() <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads) == 1
    shipped = {p.name: json.loads(p.read_text()) for p in (CHART / "dashboards").glob("*.json")}
    carried = {k: json.loads(v) for d in docs if d["kind"] == "ConfigMap" for k, v in d.get("data", {}).items()
               if k.endswith(".json")}
    assert carried == shipped


@pytest.mark.parametrize(
    ("disabled", "absent_component"), [("operator.enabled", "operator"), ("nodeAgent.enabled", "node-agent")]
)
def test_each_component_can_be_turned_off(helm_bin: Path, disabled: str, absent_component: str) -> None:
    docs = render(helm_bin, "gl", "gpulane", (*MONITORING, "--set", f"{disabled}=false"))
    components = {d["metadata"].get("labels", {}).get("app.kubernetes.io/component") for d in docs}
    assert absent_component not in components
    assert {"operator", "node-agent"} - {absent_component} <= components
    out = run_helm(helm_bin, "lint", str(CHART), "--strict", *MONITORING, "--set", f"{disabled}=false")
    assert "0 chart(s) failed" in out


def test_helm_package_ships_everything(helm_bin: Path, tmp_path: Path) -> None:
    import tarfile

    out = run_helm(helm_bin, "package", str(CHART), "--destination", str(tmp_path))
    archive = next(tmp_path.glob("gpulane-*.tgz"))
    assert archive.name == "gpulane-0.1.0.tgz", out
    with tarfile.open(archive) as tar:
        names = {n.removeprefix("gpulane/") for n in tar.getnames()}
    expected = {"Chart.yaml", "values.yaml", "values.schema.json", "README.md", "values-kind.yaml",
                "rules/gpulane-alerts.yaml", "templates/NOTES.txt"}
    expected |= {f"crds/{p.name}" for p in (CHART / "crds").glob("*.yaml")}
    expected |= {f"dashboards/{p.name}" for p in (CHART / "dashboards").glob("*.json")}
    assert expected <= names, expected - names
    out = run_helm(helm_bin, "lint", "--strict", str(archive))
    assert "0 chart(s) failed" in out
