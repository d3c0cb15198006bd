from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_core.cli import main
from gpulane_core.cluster import ClusterState
from gpulane_core.model import Gpu, Job, JobId, Node, NodeName
from gpulane_operator.metrics import OperatorMetrics


def test_lane_memory_gauge_reports_committed_bytes_per_gpu() -> None:
    node = Node(NodeName("n1"), (Gpu(0, "GPU-0", "T4", 16384),))
    state = ClusterState.of([node])
    job = Job(JobId("ns/a"), 1024, 2048)
    state = state.reserve(job, next(state.candidates(job, node.name)))
    metrics = OperatorMetrics()
    metrics.observe_state(state)
    metrics.observe_counts({"guaranteed": 2, "best-effort": 0}, {"Pending": 2})
    value = metrics.registry.get_sample_value(
        "gpulane_lane_memory_allocated_bytes", {"node": "n1", "gpu": "0", "UUID": "GPU-0"}
    )
    assert value == 3072 * 1024 * 1024
    assert metrics.registry.get_sample_value("gpulane_queue_length", {"class": "guaranteed"}) == 2
    assert OperatorMetrics().registry is not metrics.registry  # no shared global registry


def test_operator_command_rejects_bad_settings_before_starting_kopf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("scheduling: {ordering: lifo}\n")
    monkeypatch.delenv("GPULANE_OPERATOR_CONFIG", raising=False)
    assert main(["operator", "--config", str(config)]) == 2
    assert "scheduling.ordering" in capsys.readouterr().err
    assert main(["operator", "--config", str(tmp_path / "missing.yaml")]) == 2
