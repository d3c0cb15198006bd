"""The GPUShareJob CRD rejects malformed jobs at the apiserver, with messages naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from opharness import GROUP, PLURAL, VERSION, create_job, job_manifest

pytestmark = pytest.mark.integration

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value

    return edit


_DELETE = object()

CASES: list[tuple[str, Edit, str]] = [
    ("no-memory", _set("spec.memory", _DELETE), "spec.memory: Required value"),
    ("bad-quantity", _set("spec.memory.persistent", "3GB"), "spec.memory.persistent in body should match"),
    ("negative", _set("spec.memory.ephemeral", -5), "spec.memory.ephemeral in body should be greater than or equal to 0"),
    ("zero-memory", lambda d: d["spec"].update(memory={"persistent": 0, "ephemeral": "0Mi"}),
     "memory.persistent + memory.ephemeral must be greater than zero"),
    ("bad-class", _set("spec.class", "premium"), 'spec.class: Unsupported value: "premium"'),
    ("zero-gpus", _set("spec.gpus", 0), "spec.gpus in body should be greater than or equal to 1"),
    ("no-containers", _set("spec.template.spec", {}), "spec.template.spec.containers: Required value"),
    ("empty-containers", _set("spec.template.spec.containers", []), "spec.template.spec.containers in body should have at least 1 items"),
    ("no-image", _set("spec.template.spec.containers", [{"name": "c"}]), "spec.template.spec.containers[0].image: Required value"),
    ("node-name", _set("spec.template.spec.nodeName", "n1"), "template.spec.nodeName must not be set; gpulane chooses the node"),
    ("working-set", _set("spec.profile", {"workingSet": "9Gi"}), "profile.workingSet must not exceed memory.persistent + memory.ephemeral"),
    ("zero-iteration", _set("spec.profile", {"iterationSeconds": 0}), "spec.profile.iterationSeconds in body should be greater than 0"),
    ("long-name", _set("metadata.name", "x" * 64), "metadata.name must be at most 63 characters"),
    ("bad-allocation", _set("spec.allocation", "cdi"), 'spec.allocation: Unsupported value: "cdi"'),
    ("many-selectors", _set("spec.deviceSelectors", ["true"] * 9), "spec.deviceSelectors: Too many: 9: must have at most 8 items"),
    ("empty-selector", _set("spec.deviceSelectors", [""]), "spec.deviceSelectors[0] in body should be at least 1 chars long"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_job_is_rejected_with_a_precise_message(
    crds: list[str], kube_api: client.ApiClient, namespace: str, name: str, edit: Edit, message: str
) -> None:
    doc = copy.deepcopy(job_manifest(name, "1Gi", "2Gi"))
    edit(doc)
    with pytest.raises(ApiException) as caught:
        create_job(kube_api, namespace, doc)
    assert caught.value.status == 422
    assert message in json.loads(caught.value.body)["message"]


def test_spec_is_immutable_and_defaults_are_applied(crds: list[str], kube_api: client.ApiClient, namespace: str) -> None:
    create_job(kube_api, namespace, job_manifest("ok", "1Gi", 512))
    custom = client.CustomObjectsApi(kube_api)
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ok")
    assert (stored["spec"]["gpus"], stored["spec"]["priority"]) == (1, 0)
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ok", {"spec": {"gpus": 2}})
    assert "spec is immutable" in json.loads(caught.value.body)["message"]
