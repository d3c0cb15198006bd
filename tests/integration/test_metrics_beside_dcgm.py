"""The agent's metrics beside dcgm-exporter, scraped by a real Prometheus (issue 15).

A stand-in exporter (dcgmstandin.py) serves dcgm-exporter's series, in its documented format, for the same
fake GPUs the agent reads. By default the agent exports only ``gpulane_*`` families, so no two series
collide and a join by ``UUID`` relates gpulane's series to dcgm-exporter's, one row per GPU. With
``dcgm_compat`` the agent serves dcgm-exporter's own families, names, units and labels (compared here with
the stand-in's, series by series), which is exactly why that mode is only for clusters without it. The
chart's hardware panels show dcgm-exporter's readings where it is scraped, the agent's where not.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dcgmstandin import DcgmStandIn
from gpulane_agent.exporter import names
from gpulane_agent.exporter.collector import GpuCollector
from gpulane_agent.exporter.server import MetricsServer, make_registry
from gpulane_agent.gpu.backend import HardwareReadings
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthBoard
from gpulane_agent.lanes import ContainerUsage, NodeView, ViewHolder, lane_views, pod_lanes
from gpulane_agent.stats import AgentStats
from gpulane_core.quantity import MIB
from gpulane_dev.prometheus import RealPrometheus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = (ROOT / "docs" / "metrics.md").read_text()
# The joins docs/metrics.md shows (asserted verbatim below, so the documented query is the tested one).
JOIN_PER_GPU = "gpulane_gpu_memory_used_bytes / on (UUID) group_left () (DCGM_FI_DEV_FB_USED * 2^20)"
JOIN_LANES = "sum by (UUID) (gpulane_lane_used_bytes) / on (UUID) group_left (modelName) (DCGM_FI_DEV_FB_USED * 2^20)"
# Two series collide when they differ only in the target they were scraped from (the name is copied into
# a label first: aggregation drops __name__).
EXACT_COLLISIONS = ('count without (instance) (label_replace({job="gpulane", __name__!~"up|scrape_.+"}, '
                    '"name", "$1", "__name__", "(.+)")) > 1')
# Or when one family has two series for one GPU (what doubles every sum() in dcgm-exporter's dashboards).
PER_GPU_COLLISIONS = 'count by (__name__, UUID) ({__name__=~"DCGM_.+"}) > 1'
HARDWARE_PANELS = ("Hardware source", "GPU temperature", "Power draw", "SM clock", "Memory clock",
                   "Memory copy utilization")


@pytest.fixture(autouse=True)
def _needs_prometheus() -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (make binaries)")


@contextmanager
def agent_exporter(backend: FakeBackend, node: str, *, dcgm_compat: bool = False,
                   view: NodeView | None = None) -> Iterator[MetricsServer]:
    holder = ViewHolder()
    if view is not None:
        holder.publish(view)
    collector = GpuCollector(backend, HealthBoard(), holder, AgentStats(), node, dcgm_compat=dcgm_compat)
    server = MetricsServer(make_registry(collector), "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def target(server: MetricsServer) -> str:
    return f"127.0.0.1:{server.port}"


def node_backend(node: str, seed: int) -> FakeBackend:
    """Four fake GPUs, each with its own memory use, utilization and hardware readings."""
    backend = FakeBackend.default(node)
    for i in range(4):
        backend.register_process(i, 1000 + i, 1000 * (i + 1))
        backend.set_utilization(i, (10 * seed + i) / 100)
        backend.set_hardware(i, HardwareReadings(
            temperature_celsius=40 + 10 * seed + i, power_milliwatts=60_000 + 1_250 * i + 7 * seed,
            sm_clock_mhz=1400 + 10 * i + seed, memory_clock_mhz=5000 + i, memory_copy_percent=5 * i + seed))  # fmt: skip
    return backend


def lanes_on_gpus_0_and_1(backend: FakeBackend, node: str) -> NodeView:
    from gpulane_agent.kube.api import PodView

    pods = [PodView("team", f"p{i}", f"uid-{i}", node, "Running", {
        "gpulane.dev/node": node, "gpulane.dev/gpu-index": str(i), "gpulane.dev/gpu-uuid": backend.gpus()[i].uuid,
        "gpulane.dev/lane": "lane-1", "gpulane.dev/lane-size-mib": "4096", "gpulane.dev/memory-limit-mib": "5120",
        "gpulane.dev/persistent-mib": "1024", "gpulane.dev/ephemeral-mib": "4096", "gpulane.dev/charge-units": "20",
    }, {"gpulane.dev/job": f"j{i}"}) for i in (0, 1)]  # fmt: skip
    lanes = pod_lanes(pods, node)
    usage = tuple(ContainerUsage(f"uid-{i}", "main", backend.gpus()[i].uuid, 500 * (i + 1) * MIB) for i in (0, 1))
    return NodeView(lanes, usage, lane_views(lanes, usage))


def by_uuid(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    uuids = [r["metric"]["UUID"] for r in rows]
    assert len(uuids) == len(set(uuids)), f"more than one row per GPU: {rows}"
    return {r["metric"]["UUID"]: r for r in rows}


def value(row: dict[str, Any]) -> float:
    return float(row["value"][1])


def test_the_documented_joins_are_the_tested_ones() -> None:
    assert JOIN_PER_GPU in METRICS_DOC and JOIN_LANES in METRICS_DOC


@pytest.mark.parametrize("host_label", ["Hostname", "hostname"])
def test_default_mode_beside_dcgm_exporter_no_series_collide_and_joins_by_uuid_give_one_row_per_gpu(
    host_label: str, tmp_path: Path
) -> None:
    node = "node-a"
    backend = node_backend(node, 1)
    uuids = [g.uuid for g in backend.gpus()]
    view = lanes_on_gpus_0_and_1(backend, node)
    with agent_exporter(backend, node, view=view) as agent, DcgmStandIn(backend, node, host_label) as dcgm, \
            RealPrometheus.start([target(agent), dcgm.target], tmp_path / "prom") as prom:  # fmt: skip
        prom.wait_for("count(up == 1) == 2")
        prom.wait_for("count(DCGM_FI_DEV_FB_USED) == 4 and count(gpulane_gpu_info) == 4")
        prom.wait_for("count(gpulane_lane_used_bytes) == 2")

        assert prom.query(EXACT_COLLISIONS) == []
        assert prom.query(PER_GPU_COLLISIONS) == []
        assert prom.query(f'count by (__name__) ({{instance="{target(agent)}", __name__=~"DCGM_.+"}})') == []
        assert prom.query(f'count({{instance="{dcgm.target}", __name__=~"gpulane_.+"}})') == []
        # both exporters really are there: dcgm-exporter's families, gpulane's hardware gauges
        assert len(prom.query(f'count by (__name__) ({{instance="{dcgm.target}", __name__=~"DCGM_.+"}})')) == 18
        assert value(prom.query("count(gpulane_gpu_temperature_celsius)")[0]) == 4

        per_gpu = by_uuid(prom.query(JOIN_PER_GPU))
        assert sorted(per_gpu) == sorted(uuids)
        assert all(value(r) == 1.0 for r in per_gpu.values())  # both read the same memory of the same GPU
        assert {r["metric"][names.HOSTNAME] for r in per_gpu.values()} == {node}
        lanes = by_uuid(prom.query(JOIN_LANES))
        assert sorted(lanes) == sorted(uuids[:2])
        for i in (0, 1):
            used_mib = 256 + 1000 * (i + 1)  # the driver reserve plus the GPU's process
            assert value(lanes[uuids[i]]) == pytest.approx(500 * (i + 1) / used_mib)
            assert lanes[uuids[i]]["metric"]["modelName"] == "Fake-GPU-16G"


def test_dcgm_compat_serves_dcgm_exporters_families_one_series_per_gpu_in_its_units_and_labels(
    tmp_path: Path,
) -> None:
    """Compared with the stand-in for the same GPUs: same names, values (units) and labels, series by series.

    Both scraped together is the misconfiguration docs/metrics.md warns about, so here both collision
    checks must find every shared family on every GPU (they can fail; default mode passes them). The
    stand-in leaves the driver-version label out here, so equal label sets are exact collisions.
    """
    node = "node-c"
    backend = node_backend(node, 3)
    uuids = sorted(g.uuid for g in backend.gpus())
    with agent_exporter(backend, node, dcgm_compat=True) as agent, \
            DcgmStandIn(backend, node, driver_version=None) as dcgm, \
            RealPrometheus.start([target(agent), dcgm.target], tmp_path / "prom") as prom:  # fmt: skip
        prom.wait_for("count(up == 1) == 2")
        prom.wait_for(f'count({{instance="{target(agent)}", __name__=~"DCGM_.+"}}) == 32')
        prom.wait_for(f'count({{instance="{dcgm.target}", __name__="DCGM_FI_DEV_FB_USED"}}) == 4')
        for family in names.DCGM_METRICS:
            ours = by_uuid(prom.query(f'{family}{{instance="{target(agent)}"}}'))
            theirs = by_uuid(prom.query(f'{family}{{instance="{dcgm.target}"}}'))
            assert sorted(ours) == uuids and sorted(theirs) == uuids, family
            for uuid in uuids:
                assert value(ours[uuid]) == pytest.approx(value(theirs[uuid])), (family, uuid)
                expected = {k: v for k, v in theirs[uuid]["metric"].items() if k != "instance"}
                assert {k: v for k, v in ours[uuid]["metric"].items() if k != "instance"} == expected
        assert prom.query(f'count({{instance="{target(agent)}", __name__=~"DCGM_FI_PROF_.+"}})') == []
        assert len(prom.query(f'{{instance="{target(agent)}", __name__=~"DCGM_.+"}}')) == 8 * 4
        # values in dcgm-exporter's units, spot-checked against the fake's readings
        gpu2 = {"UUID": backend.gpus()[2].uuid, "instance": target(agent)}
        sel = ",".join(f'{k}="{v}"' for k, v in gpu2.items())
        assert value(prom.query(f"DCGM_FI_DEV_POWER_USAGE{{{sel}}}")[0]) == 62.521  # W from 62 521 mW
        assert value(prom.query(f"DCGM_FI_DEV_SM_CLOCK{{{sel}}}")[0]) == 1423  # MHz
        assert value(prom.query(f"DCGM_FI_DEV_FB_USED{{{sel}}}")[0]) == 3256  # MiB
        assert value(prom.query(f"DCGM_FI_DEV_GPU_UTIL{{{sel}}}")[0]) == 32  # %
        assert len(prom.query(PER_GPU_COLLISIONS)) == len(names.DCGM_METRICS) * 4
        assert len(prom.query(EXACT_COLLISIONS)) == len(names.DCGM_METRICS) * 4


def _dashboard_queries() -> Any:
    path = ROOT / "tests" / "unit" / "chart" / "dashboard_queries.py"
    spec = importlib.util.spec_from_file_location("gpulane_dashboard_queries", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_hardware_panels_show_dcgm_exporter_where_scraped_and_the_agent_where_not(tmp_path: Path) -> None:
    """node-a: dcgm-exporter (newest label spelling) beside a default agent; node-b: a default agent alone;
    node-c: an agent with --dcgm-compat. Every hardware panel has one row per GPU of all three nodes, from
    the right source, with the reading in the panel's base unit; the source table says which is which."""
    dq = _dashboard_queries()
    dashboard = dq.load_dashboards()["gpulane-node-gpu.json"]
    hardware = [q for q in dq.panel_queries("gpulane-node-gpu.json", dashboard) if q.panel in HARDWARE_PANELS]
    assert len(hardware) == 6
    backends = {n: node_backend(n, seed) for seed, n in enumerate(("node-a", "node-b", "node-c"), start=1)}
    with agent_exporter(backends["node-a"], "node-a") as agent_a, \
            agent_exporter(backends["node-b"], "node-b") as agent_b, \
            agent_exporter(backends["node-c"], "node-c", dcgm_compat=True) as agent_c, \
            DcgmStandIn(backends["node-a"], "node-a", "hostname") as dcgm_a, \
            RealPrometheus.start([target(agent_a), target(agent_b), target(agent_c), dcgm_a.target],
                                 tmp_path / "prom") as prom:  # fmt: skip
        prom.wait_for("count(up == 1) == 4")
        prom.wait_for("count(gpulane_gpu_info) == 12 and count(DCGM_FI_DEV_GPU_UTIL) == 8")
        source = {"node-a": dcgm_a.target, "node-b": target(agent_b), "node-c": target(agent_c)}
        readings = {g.uuid: (n, b.hardware(g.index)) for n, b in backends.items() for g in b.gpus()}
        for query in hardware:
            rows = by_uuid(prom.query(dq.substitute(query.expr, {"Hostname": ".*", "gpu": ".*"})))
            assert sorted(rows) == sorted(readings), query
            for uuid, r in rows.items():
                node, hw = readings[uuid]
                if query.panel != "Hardware source":
                    assert r["metric"]["instance"] == source[node], (query.panel, node)
                    assert value(r) == pytest.approx(_expected(query.panel, hw)), (query.panel, node)
                elif node == "node-b":
                    assert "dcgm-exporter not scraped" in r["metric"]["source"]
                else:
                    assert r["metric"]["source"].startswith("dcgm-exporter")
        temperature = next(q for q in hardware if q.panel == "GPU temperature")
        one = dq.substitute(temperature.expr, {"Hostname": "node-a", "gpu": "2"})
        assert [r["metric"]["UUID"] for r in prom.query(one)] == [backends["node-a"].gpus()[2].uuid]


def _expected(panel: str, hw: HardwareReadings) -> float:
    assert hw.temperature_celsius is not None and hw.power_milliwatts is not None
    assert hw.sm_clock_mhz is not None and hw.memory_clock_mhz is not None and hw.memory_copy_percent is not None
    return {
        "GPU temperature": float(hw.temperature_celsius),
        "Power draw": hw.power_milliwatts / 1000,
        "SM clock": hw.sm_clock_mhz * 1e6,
        "Memory clock": hw.memory_clock_mhz * 1e6,
        "Memory copy utilization": hw.memory_copy_percent / 100,
    }[panel]
