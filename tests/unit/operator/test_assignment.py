from __future__ import annotations

import pytest
from gpulane_core.model import JobClass, JobId, LaneId, NodeName
from gpulane_core.podcontract import (
    LANE_SIZE_MIB,
    AnnotationError,
    Assignment,
    from_annotations,
    to_annotations,
)
from gpulane_operator.assignment import parse_pod

A = Assignment(
    job=JobId("ns/a"),
    node=NodeName("n1"),
    gpu_indices=(0, 1),
    gpu_uuids=("GPU-x", "GPU-y"),
    lane=LaneId("lane-3"),
    lane_size_mib=5120,
    persistent_mib=3072,
    ephemeral_mib=5120,
    charge_units=32,
    job_class=JobClass.BEST_EFFORT,
)


def test_annotations_round_trip_and_follow_the_contract() -> None:
    ann = to_annotations(A)
    assert ann["gpulane.dev/gpu-index"] == "0,1" and ann["gpulane.dev/gpu-uuid"] == "GPU-x,GPU-y"
    assert ann["gpulane.dev/memory-limit-mib"] == "8192" and ann["gpulane.dev/class"] == "best-effort"
    assert from_annotations(A.job, ann) == A


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [(LANE_SIZE_MIB, "big", "is not an integer"), (LANE_SIZE_MIB, "-1", "is negative"), ("gpulane.dev/gpu-uuid", "GPU-x", "different numbers")],
)
def test_malformed_annotations_name_the_key(key: str, value: str, needle: str) -> None:
    ann = {**to_annotations(A), key: value}
    with pytest.raises(AnnotationError, match=needle):
        from_annotations(A.job, ann)


def test_parse_pod_ignores_foreign_pods_and_keeps_bad_ones_with_their_error() -> None:
    assert parse_pod({"metadata": {"name": "p", "labels": {}}}) is None
    body = {
        "metadata": {
            "name": "a-gpulane",
            "namespace": "ns",
            "labels": {"app.kubernetes.io/managed-by": "gpulane", "gpulane.dev/job": "a"},
            "annotations": {"gpulane.dev/node": "n1"},
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    pod = parse_pod(body)
    assert pod is not None and pod.job == "ns/a" and pod.assignment is None
    assert "gpulane.dev/gpu-index is missing" in pod.error and not pod.holds_memory
