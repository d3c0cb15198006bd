"""The CLI's flag mapping and the kubernetes_asyncio pod conversion (pure parts of the I/O adapters)."""

from __future__ import annotations

import datetime as dt

from gpulane_agent.cli import flags_from_args, register
from gpulane_agent.kube.client import pod_view
from gpulane_agent.settings import BackendKind, EnforcementPolicy, load_config
from kubernetes_asyncio import client


def test_flags_map_to_dotted_settings_and_win() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["agent", "--backend", "fake", "--metrics-port", "9500", "--enforcement", "evict",
                              "--node-name", "n9", "--memory-unit-mib", "512", "--fake-process-dir", "/x/p"])
    config = load_config(None, {"GPULANE_AGENT_METRICS_PORT": "1"}, flags_from_args(args))
    assert config.backend.kind is BackendKind.FAKE
    assert config.metrics.port == 9500
    assert config.enforcement.policy is EnforcementPolicy.EVICT
    assert config.device_plugin.memory_unit_mib == 512
    assert config.node_name == "n9"
    assert config.backend.fake_process_dir == "/x/p"
    given = flags_from_args(parser.parse_args(["agent"]))
    assert "backend.fail_on_init" not in given and "metrics.dcgm_compat" not in given  # not given: env or file decide
    compat = load_config(None, {}, flags_from_args(parser.parse_args(["agent", "--node-name", "n", "--dcgm-compat"])))
    assert compat.metrics.dcgm_compat is True


def test_pod_view_reads_annotations_phase_and_container_ids() -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", namespace="ns", uid="u1", annotations={"a": "b"}, labels={"l": "m"},
                                     deletion_timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        spec=client.V1PodSpec(node_name="n1", containers=[client.V1Container(name="main")]),
        status=client.V1PodStatus(phase="Running", container_statuses=[client.V1ContainerStatus(
            name="main", container_id="containerd://abc123", image="i", image_id="x", ready=True, restart_count=0)]),
    )
    view = pod_view(pod)
    assert (view.key, view.uid, view.node_name, view.phase) == ("ns/p", "u1", "n1", "Running")
    assert dict(view.annotations) == {"a": "b"} and dict(view.labels) == {"l": "m"}
    assert dict(view.container_ids) == {"abc123": "main"}
    assert view.deleting
