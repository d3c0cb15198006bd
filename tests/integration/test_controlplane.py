"""What only a real apiserver shows: its own validation messages, watch resumption across a restart,
optimistic concurrency, RBAC, the Binding subresource, and kwok running pods on fake GPU nodes."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpulane_dev.controlplane import ControlPlane
from gpulane_dev.crds import server_message
from gpulane_dev.fakenodes import GPU_MEMORY_RESOURCE, node_ready
from gpulane_dev.kubeclient import connected
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

WAIT_S = 60.0

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.cptest.gpulane.dev"},
    "spec": {
        "group": "cptest.gpulane.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "required": ["minReplicas", "maxReplicas"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                    },
                    "x-kubernetes-validations": [
                        {"rule": "self.minReplicas <= self.maxReplicas",
                         "message": "minReplicas must not exceed maxReplicas"},
                    ],
                }},
            }},
        }],
    },
}  # fmt: skip


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def test_invalid_configmap_name_is_rejected_with_the_apiservers_message(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name"), data={"k": "v"})
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map(namespace, body)
    assert info.value.status == 422
    assert server_message(info.value) == (
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 '
        "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )


@pytest.fixture(scope="module")
def widget_crd(control_plane: ControlPlane) -> Iterator[str]:
    # Once per module: a CRD deleted after one case is still being removed when the next case
    # applies it again, and that replaced CRD then vanishes under the second case.
    from gpulane_dev import crds

    with connected(control_plane.kubeconfig) as api:
        names = crds.apply(api, [WIDGET_CRD])
        crds.wait_established(api, names)
        yield names[0]
        client.ApiextensionsV1Api(api).delete_custom_resource_definition(names[0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"minReplicas": 3, "maxReplicas": 1},
         'Widget.cptest.gpulane.dev "w" is invalid: spec: Invalid value: minReplicas must not exceed maxReplicas'),
        ({"minReplicas": -1, "maxReplicas": 1},
         'Widget.cptest.gpulane.dev "w" is invalid: spec.minReplicas: Invalid value: -1: '
         "spec.minReplicas in body should be greater than or equal to 0"),
        # A missing field also leaves the CEL rule unevaluated, and the server says so.
        ({"minReplicas": 1},
         'Widget.cptest.gpulane.dev "w" is invalid: [spec.maxReplicas: Required value, <nil>: Invalid value: '
         "null: some validation rules were not checked because the object was invalid; correct the existing "
         "errors to complete validation]"),
    ],
)  # fmt: skip
def test_crd_schema_and_cel_rules_reject_with_the_apiservers_message(
    kube_api: client.ApiClient, namespace: str, widget_crd: str, spec: dict[str, int], message: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = {"apiVersion": "cptest.gpulane.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object("cptest.gpulane.dev", "v1", namespace, "widgets", body)
    assert info.value.status == 422
    assert server_message(info.value) == message


def test_stale_resource_version_is_a_conflict(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"v": "1"})
    )
    core.patch_namespaced_config_map("cm", namespace, {"data": {"v": "2"}})
    stale = client.V1ConfigMap(metadata=created.metadata, data={"v": "3"})
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("cm", namespace, stale)
    assert info.value.status == 409
    assert server_message(info.value) == (
        'Operation cannot be fulfilled on configmaps "cm": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_rbac_is_enforced_for_other_users(control_plane: ControlPlane, namespace: str) -> None:
    with connected(control_plane.kubeconfig) as api:
        api.set_default_header("Impersonate-User", "alice")  # system:masters may impersonate
        with pytest.raises(ApiException) as info:
            client.CoreV1Api(api).list_namespaced_pod(namespace)
    assert info.value.status == 403
    assert server_message(info.value) == (
        f'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "{namespace}"'
    )


def _consume(stream: Iterator[Any], events: queue.Queue[tuple[str, Any]]) -> None:
    try:
        for event in stream:
            events.put(("event", event))
        events.put(("ended", None))
    except Exception as exc:  # the connection broke: that is what this test provokes
        events.put(("broken", exc))


def _next_added(events: queue.Queue[tuple[str, Any]], name: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        kind, item = events.get(timeout=WAIT_S)
        if kind == "event" and item["type"] == "ADDED" and item["object"].metadata.name == name:
            return item["object"]
        if kind == "event":
            continue
        raise AssertionError(f"watch {kind} before ADDED {name}: {item!r}")
    raise AssertionError(f"no ADDED event for {name}")


def test_watch_across_an_apiserver_restart_resumes_the_informer_way(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> None:
    """A restarted apiserver's watch cache starts at etcd's current revision, so resuming from an
    older resourceVersion is 410 Expired; a client relists and watches from the list's version, and
    then sees what was created after the restart, exactly once. kopf and client-go informers do this."""
    core = client.CoreV1Api(kube_api)
    start_rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    first = watch.Watch()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stream = first.stream(core.list_namespaced_config_map, namespace, resource_version=start_rv, timeout_seconds=300)
    consumer = threading.Thread(target=_consume, args=(stream, events), daemon=True)
    consumer.start()
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="before")))
    last_rv = _next_added(events, "before").metadata.resource_version
    # Any later write moves etcd's revision past last_rv (the restarting apiserver writes too; this
    # makes it certain rather than likely).
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="bump")))

    control_plane.restart_apiserver()
    consumer.join(timeout=WAIT_S)
    assert not consumer.is_alive(), "the first watch should end when its apiserver stops"
    outcomes = [events.get_nowait()[0] for _ in range(events.qsize())]
    assert outcomes and outcomes[-1] in ("ended", "broken")

    with connected(control_plane.kubeconfig) as fresh:
        core2 = client.CoreV1Api(fresh)
        core2.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after")))
        with pytest.raises(ApiException) as expired:
            next(iter(watch.Watch().stream(
                core2.list_namespaced_config_map, namespace, resource_version=last_rv, timeout_seconds=30)))
        assert expired.value.status == 410
        assert str(expired.value.reason).startswith(f"Expired: too old resource version: {last_rv} (")

        listing = core2.list_namespaced_config_map(namespace)
        # (No kube-root-ca.crt here: its publisher lives in the absent kube-controller-manager.)
        assert sorted(cm.metadata.name for cm in listing.items) == ["after", "before"]
        core2.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after-2")))
        resumed = watch.Watch()
        seen: list[tuple[str, str]] = []
        for event in resumed.stream(
            core2.list_namespaced_config_map, namespace, resource_version=listing.metadata.resource_version,
            timeout_seconds=30,
        ):  # fmt: skip
            seen.append((event["type"], event["object"].metadata.name))
            if event["object"].metadata.name == "after-2":
                resumed.stop()
                break
    assert seen == [("ADDED", "after-2")]


def test_kwok_makes_a_fake_gpu_node_ready_and_a_bound_pod_running(
    kube_api: client.ApiClient, namespace: str, fake_gpu_nodes: Callable[..., list[str]]
) -> None:
    core = client.CoreV1Api(kube_api)
    (node_name,) = fake_gpu_nodes(1, gpus_per_node=2, gpu_memory_mib=8192)
    node = core.read_node(node_name)
    assert node_ready(node)
    assert node.status.allocatable[GPU_MEMORY_RESOURCE] == "64"  # 2 GPUs x 8192 MiB / 256 MiB units
    assert node.status.allocatable["nvidia.com/gpu"] == "2"
    assert node.metadata.labels["nvidia.com/gpu.memory"] == "8192"
    assert node.metadata.labels["gpulane.dev/fake-gpu"] == "true"

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p1", annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "2s"}),
        spec=client.V1PodSpec(scheduler_name="gpulane", containers=[client.V1Container(name="c", image="busybox")]),
    )
    core.create_namespaced_pod(namespace, pod)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}  # fmt: skip
    # The client cannot deserialize the Status a Binding returns: read the raw response instead.
    core.create_namespaced_pod_binding("p1", namespace, binding, _preload_content=False)
    wait_for(lambda: core.read_namespaced_pod("p1", namespace).status.phase in ("Running", "Succeeded"), "pod Running")
    bound = core.read_namespaced_pod("p1", namespace)
    assert bound.spec.node_name == node_name
    assert bound.status.pod_ip

    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_binding("p1", namespace, binding, _preload_content=False)
    assert info.value.status == 409
    assert server_message(info.value) == (
        f'Operation cannot be fulfilled on pods/binding "p1": pod p1 is already assigned to node "{node_name}"'
    )
    # The gpulane kwok stage: a Running pod with the delay annotation completes.
    wait_for(lambda: core.read_namespaced_pod("p1", namespace).status.phase == "Succeeded", "pod Succeeded")


def test_repo_crds_are_established(crds: list[str], kube_api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube_api)
    for name in crds:
        conditions = {c.type: c.status for c in ext.read_custom_resource_definition(name).status.conditions}
        assert conditions["Established"] == "True", name
    assert {"gpusharejobs.gpulane.dev", "gpunodes.gpulane.dev"} <= set(crds)


def test_start_retries_when_a_picked_port_is_taken(
    dev_binaries: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from gpulane_dev import procs
    from gpulane_dev.controlplane import ControlPlaneOptions

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_port = procs.free_port
        handed: list[int] = []

        def first_one_taken() -> int:
            port = taken if not handed else real_free_port()
            handed.append(port)
            return port

        monkeypatch.setattr(procs, "free_port", first_one_taken)
        options = ControlPlaneOptions.from_binaries(dev_binaries, tmp_path, with_kwok=False)
        with ControlPlane.start(options) as plane:
            assert plane.ready()
            assert plane.etcd_url != f"http://127.0.0.1:{taken}"
    assert handed[0] == taken and len(handed) == 6  # two attempts, three ports each
