"""Only the gpulane operator allocates gpu.gpulane.dev devices: the chart's ValidatingAdmissionPolicy,
rendered by the real helm, on the real kube-apiserver v1.37.2 with the real kube-scheduler v1.37.2.

A kwok node carries the ResourceSlice a node agent would publish (``slices.py``) and the chart's
DeviceClass exists. A plain pod (default scheduler) with a claim for that class is refused at
kube-scheduler's PreBind, where it writes the allocation; with the binding deleted the same pod is
allocated and bound by kube-scheduler, which is what the policy prevents. The operator's identity and
the chart's ``nodeAgent.draAllocators`` may allocate; the resourceclaim controller's writes (reservedFor
changed, allocation removed) pass. Other identities are played by impersonation in system:masters, so
RBAC never refuses them and every refusal seen is the policy's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charthelm
import pytest
from gpulane_agent.dra import slices
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_dev import procs, realnodes
from gpulane_dev.binaries import Binaries
from gpulane_dev.controlplane import ControlPlane
from gpulane_dev.kubeclient import connected
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

GROUP, VERSION = "resource.k8s.io", "v1"
ADM = ("admissionregistration.k8s.io", "v1")
DRIVER = "gpu.gpulane.dev"
RELEASE, RELEASE_NS = "draown", "gpulane-system"
OPERATOR = f"system:serviceaccount:{RELEASE_NS}:{RELEASE}-gpulane-operator"
EXTRA_ALLOCATOR = "dev-cluster-admin"
CLAIM_CONTROLLER = "system:serviceaccount:kube-system:resourceclaim-controller"
DENIAL = "gpu.gpulane.dev devices are allocated by the gpulane operator: run the workload as a GPUShareJob"
WAIT_S = 90.0


def _wait(probe: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Cluster:
    admin: client.ApiClient
    kubeconfig: Path
    node: str
    policy: dict[str, Any]
    binding: dict[str, Any]
    probe_ns: str  # holds the claim "probe" that _policy_enforced writes to

    def as_user(self, user: str) -> client.CustomObjectsApi:
        """``user`` impersonated in system:masters: RBAC allows everything, only admission can refuse."""
        api = client.ApiClient(self.admin.configuration)
        api.set_default_header("Impersonate-User", user)
        api.set_default_header("Impersonate-Group", "system:masters")
        return client.CustomObjectsApi(api)


def _rendered(helm: Path) -> dict[str, dict[str, Any]]:
    docs = charthelm.render(helm, RELEASE, RELEASE_NS, [
        "--set", "nodeAgent.allocation=dra", "--set", f"nodeAgent.draAllocators={{{EXTRA_ALLOCATOR}}}"])  # fmt: skip
    wanted = ("DeviceClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    return {d["kind"]: d for d in docs if d["kind"] in wanted}


def _install_binding(custom: client.CustomObjectsApi, binding: dict[str, Any]) -> None:
    custom.create_cluster_custom_object(*ADM, "validatingadmissionpolicybindings", binding)


def _delete(custom: client.CustomObjectsApi, group: tuple[str, str], plural: str, name: str) -> None:
    try:
        custom.delete_cluster_custom_object(*group, plural, name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="module")
def cluster(
    control_plane: ControlPlane, dev_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    rendered = _rendered(dev_binaries.helm)
    node = f"draown-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path_factory.mktemp("draown")
    with connected(control_plane.kubeconfig) as admin:
        core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
        # A Node object the scheduler can place on (no kwok stage needed: nothing runs the pod).
        core.create_node({"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                          "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                     "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                     "conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
        probe_ns = f"draown-probe-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": probe_ns}})
        _claim(custom, probe_ns, "probe", "256Mi")
        uid = core.read_node(node).metadata.uid
        gpus = FakeBackend.default(node).gpus()
        custom.create_cluster_custom_object(GROUP, VERSION, "resourceslices",
                                            slices.body(node, uid, slices.slice_spec(node, gpus, {}, 256), 1))  # fmt: skip
        custom.create_cluster_custom_object(GROUP, VERSION, "deviceclasses", rendered["DeviceClass"])
        policy, binding = rendered["ValidatingAdmissionPolicy"], rendered["ValidatingAdmissionPolicyBinding"]
        custom.create_cluster_custom_object(*ADM, "validatingadmissionpolicies", policy)
        _install_binding(custom, binding)
        # kube-controller-manager only for the controller that type-checks policies and writes their status.
        manager_argv = tuple(
            "--controllers=validatingadmissionpolicy-status-controller" if a == "--controllers=*" else a
            for a in realnodes.controller_manager_argv(dev_binaries.kube_controller_manager, control_plane)
        )
        started = [
            procs.start(procs.ProcessSpec(name, argv, workdir / f"{name}.log"), die_with_parent=True)
            for name, argv in (
                ("kube-scheduler", realnodes.scheduler_argv(dev_binaries.kube_scheduler, control_plane)),
                ("kube-controller-manager", manager_argv),
            )
        ]
        cluster = Cluster(admin, control_plane.kubeconfig, node, policy, binding, probe_ns)
        try:
            yield cluster
        finally:
            for proc in started:
                proc.stop()
            _delete(custom, ADM, "validatingadmissionpolicybindings", binding["metadata"]["name"])
            _delete(custom, ADM, "validatingadmissionpolicies", policy["metadata"]["name"])
            # The apiserver drops the policy from its informer a moment later; later modules (the DRA
            # plugin's allocate claims as the admin) must not meet it.
            _policy_enforced(cluster, on=False)
            core.delete_namespace(probe_ns)
            _delete(custom, (GROUP, VERSION), "deviceclasses", DRIVER)
            _delete(custom, (GROUP, VERSION), "resourceslices", slices.slice_name(node))
            core.delete_node(node)


def _claim(custom: client.CustomObjectsApi, namespace: str, name: str, memory: str = "2Gi") -> str:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourceClaim", "metadata": {"name": name},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
            "deviceClassName": DRIVER, "capacity": {"requests": {"memory": memory}}}}]}},
    }  # fmt: skip
    return str(
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "resourceclaims", body)["metadata"][
            "uid"
        ]
    )


def _allocation(node: str, device: str = "gpu-0", memory: str = "2Gi") -> dict[str, Any]:
    return {
        "devices": {"results": [{"request": "gpu", "driver": DRIVER, "pool": node, "device": device,
                                 "consumedCapacity": {"memory": memory}, "shareID": str(uuid.uuid4())}]},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node]}]}]},
    }  # fmt: skip


def _patch_status(custom: client.CustomObjectsApi, namespace: str, name: str, status: dict[str, Any]) -> Any:
    return custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "resourceclaims", name, {"status": status}
    )


def _read(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "resourceclaims", name))


def _denied(call: Callable[[], Any]) -> str:
    """The refusal's message; AssertionError if the call was allowed."""
    try:
        call()
    except ApiException as exc:
        assert exc.status == 403, exc.body
        return str(exc.body)
    raise AssertionError("the write was allowed")


def _policy_enforced(cluster: Cluster, on: bool) -> None:
    """Wait until the apiserver's policy informer has (on) or no longer has (off) the binding."""
    stranger = cluster.as_user("probe-user")
    namespace, probe = cluster.probe_ns, "probe"

    def settled() -> bool:
        try:
            _patch_status(
                stranger, namespace, probe, {"allocation": _allocation(cluster.node, "gpu-3", "256Mi")}
            )
        except ApiException as exc:
            if exc.status == 403 and DENIAL in str(exc.body):
                return on
            raise
        _patch_status(stranger, namespace, probe, {"allocation": None})  # removal is always allowed
        return not on

    _wait(settled, f"the binding to be {'enforced' if on else 'gone'}")


def _pod(name: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "trainer:1", "resources": {"claims": [{"name": "gpu"}]}}],
                 "resourceClaims": [{"name": "gpu", "resourceClaimName": claim}],
                 "tolerations": [{"operator": "Exists"}]},
    }  # fmt: skip


def test_the_policy_type_checks_on_the_real_apiserver(cluster: Cluster) -> None:
    custom = client.CustomObjectsApi(cluster.admin)
    name = cluster.policy["metadata"]["name"]

    def checked() -> dict[str, Any] | None:
        status = (
            custom.get_cluster_custom_object(*ADM, "validatingadmissionpolicies", name).get("status") or {}
        )
        return status if status.get("observedGeneration") == 1 else None

    status = _wait(checked, "the apiserver to type-check the policy")
    assert (status.get("typeChecking") or {}).get("expressionWarnings") in (None, []), status


def test_kube_scheduler_is_refused_a_plain_pods_claim_until_the_binding_is_removed(
    cluster: Cluster, namespace: str
) -> None:
    core, custom = client.CoreV1Api(cluster.admin), client.CustomObjectsApi(cluster.admin)
    _policy_enforced(cluster, on=True)
    _claim(custom, namespace, "plain")
    core.create_namespaced_pod(namespace, _pod("plain", "plain"))

    def refused_event() -> str:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=plain").items
        return next((e.message for e in events if DENIAL in (e.message or "")), "")

    message = _wait(refused_event, "kube-scheduler's event carrying the policy's message")
    assert "FailedScheduling" in {e.reason for e in core.list_namespaced_event(namespace).items}
    assert "run the workload as a GPUShareJob" in message
    pod = core.read_namespaced_pod("plain", namespace)
    assert not pod.spec.node_name
    [condition] = [c for c in pod.status.conditions or () if c.type == "PodScheduled"]
    assert condition.status == "False" and DENIAL in (condition.message or "")
    assert "allocation" not in (_read(custom, namespace, "plain").get("status") or {})

    # (b) The test can fail: without the binding kube-scheduler allocates the same claim and binds the pod.
    custom.delete_cluster_custom_object(
        *ADM, "validatingadmissionpolicybindings", cluster.binding["metadata"]["name"]
    )
    try:
        _policy_enforced(cluster, on=False)
        _wait(
            lambda: core.read_namespaced_pod("plain", namespace).spec.node_name,
            "kube-scheduler to bind the pod",
        )
        allocation = _read(custom, namespace, "plain")["status"]["allocation"]
        [result] = allocation["devices"]["results"]
        assert (result["driver"], result["pool"]) == (DRIVER, cluster.node)
        assert result["consumedCapacity"] == {"memory": "2Gi"}
    finally:
        _install_binding(custom, cluster.binding)
    _policy_enforced(cluster, on=True)

    # (d) What kube-controller-manager's resourceclaim controller does to that claim stays allowed:
    # reservedFor emptied (allocation unchanged), then the allocation removed; putting it back is not.
    controller = cluster.as_user(CLAIM_CONTROLLER)
    assert _read(custom, namespace, "plain")["status"]["reservedFor"][0]["name"] == "plain"
    _patch_status(controller, namespace, "plain", {"reservedFor": None})
    assert "reservedFor" not in _read(custom, namespace, "plain")["status"]
    _patch_status(controller, namespace, "plain", {"allocation": None})
    assert "allocation" not in (_read(custom, namespace, "plain").get("status") or {})
    assert DENIAL in _denied(
        lambda: _patch_status(controller, namespace, "plain", {"allocation": allocation})
    )


def test_only_the_operator_and_the_configured_allocators_may_allocate(
    cluster: Cluster, namespace: str
) -> None:
    custom = client.CustomObjectsApi(cluster.admin)
    _policy_enforced(cluster, on=True)
    for name in ("by-operator", "by-dev-admin", "by-stranger"):
        _claim(custom, namespace, name)

    stranger = cluster.as_user("someone")
    body = _denied(
        lambda: _patch_status(stranger, namespace, "by-stranger", {"allocation": _allocation(cluster.node)})
    )
    assert DENIAL in body and "someone may not write an allocation" in body
    assert "allocation" not in (_read(custom, namespace, "by-stranger").get("status") or {})

    # (c) the operator's service account and the chart's extra allocator write allocations.
    for user, name in ((OPERATOR, "by-operator"), (EXTRA_ALLOCATOR, "by-dev-admin")):
        _patch_status(cluster.as_user(user), namespace, name, {"allocation": _allocation(cluster.node)})
        assert (
            _read(custom, namespace, name)["status"]["allocation"]["devices"]["results"][0]["driver"]
            == DRIVER
        )
    # The apiserver itself keeps an allocation immutable once set, so the policy guards only its setting.
    # A stranger may still write what is not the allocation: reservedFor on the status, and labels on the
    # claim (an update of the main resource keeps the stored status, so the allocation is unchanged).
    pod_ref = {"resource": "pods", "name": "p", "uid": str(uuid.uuid4())}
    _patch_status(stranger, namespace, "by-operator", {"reservedFor": [pod_ref]})
    stranger.patch_namespaced_custom_object(GROUP, VERSION, namespace, "resourceclaims", "by-operator",
                                            {"metadata": {"labels": {"touched": "yes"}}})  # fmt: skip
    claim = _read(custom, namespace, "by-operator")
    assert (
        claim["metadata"]["labels"] == {"touched": "yes"} and claim["status"]["reservedFor"][0]["name"] == "p"
    )
