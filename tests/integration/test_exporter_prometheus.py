"""The exporter scraped by a real Prometheus; PromQL answers must match the fake backend's state.

Also runs the real ``promtool check metrics`` over the exposition, in the default mode and with
``dcgm_compat``. Metric names must pass cleanly; the only lint promtool may raise is camelCase *label*
names, which are the dcgm-exporter-compatible labels the contract requires (``UUID``, ``modelName``,
``Hostname``) and nothing else.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpulane_agent.exporter import names
from gpulane_agent.exporter.collector import GpuCollector
from gpulane_agent.exporter.server import MetricsServer, make_registry
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.health import HealthBoard
from gpulane_agent.lanes import ContainerUsage, NodeView, ViewHolder, lane_views, pod_lanes
from gpulane_agent.stats import AgentStats
from gpulane_core.quantity import MIB
from gpulane_dev.prometheus import RealPrometheus

pytestmark = pytest.mark.integration

NODE = "node-p"
CAMEL_LABEL_LINT = "label names should be written in 'snake_case' not 'camelCase'"


@dataclass
class Exporter:
    backend: FakeBackend
    server: MetricsServer
    view: ViewHolder
    dcgm_compat: bool

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def text(self) -> str:
        with urllib.request.urlopen(f"http://{self.target}/metrics", timeout=5) as resp:
            return str(resp.read().decode())


@pytest.fixture
def exporter(request: pytest.FixtureRequest) -> Iterator[Exporter]:
    dcgm_compat = bool(getattr(request, "param", False))
    backend = FakeBackend.default(NODE)
    view = ViewHolder()
    collector = GpuCollector(backend, HealthBoard(), view, AgentStats(), NODE, dcgm_compat=dcgm_compat)
    server = MetricsServer(make_registry(collector), "127.0.0.1", 0)
    server.start()
    try:
        yield Exporter(backend, server, view, dcgm_compat)
    finally:
        server.stop()


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (make binaries)")
    return path


def _lane_view(backend: FakeBackend) -> NodeView:
    from gpulane_agent.kube.api import PodView

    gpu0 = backend.gpus()[0].uuid
    pod = PodView("team", "trainer", "uid-1", NODE, "Running", {
        "gpulane.dev/node": NODE, "gpulane.dev/gpu-index": "0", "gpulane.dev/gpu-uuid": gpu0,
        "gpulane.dev/lane": "lane-1", "gpulane.dev/lane-size-mib": "4096", "gpulane.dev/memory-limit-mib": "5120",
        "gpulane.dev/persistent-mib": "1024", "gpulane.dev/ephemeral-mib": "4096", "gpulane.dev/charge-units": "20",
    }, {"gpulane.dev/job": "resnet"})
    lanes = pod_lanes([pod], NODE)
    usage = (ContainerUsage("uid-1", "main", gpu0, 3000 * MIB),)
    return NodeView(lanes, usage, lane_views(lanes, usage))


@pytest.mark.parametrize("exporter", [False, True], ids=["default", "dcgm-compat"], indirect=True)
def test_promtool_accepts_the_metric_names(exporter: Exporter) -> None:
    promtool = _promtool()
    exporter.view.publish(_lane_view(exporter.backend))
    exporter.backend.lose_gpu(3)  # makes backend_errors_total appear too
    text = exporter.text()
    served = set(re.findall(r"^(DCGM_\w+)\{", text, re.M))
    assert served == (set(names.DCGM_METRICS) if exporter.dcgm_compat else set())
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert all(p.endswith(CAMEL_LABEL_LINT) for p in problems), problems
    # With the contract's dcgm-style labels renamed, promtool has nothing to say at all.
    snake = re.sub(r"\b(UUID|modelName|Hostname)=", lambda m: {"UUID": "uuid", "modelName": "model_name",
                                                                 "Hostname": "hostname"}[m.group(1)] + "=", text)
    clean = subprocess.run([promtool, "check", "metrics"], input=snake, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not (clean.stdout + clean.stderr).strip()


def test_real_prometheus_scrapes_values_that_match_the_fake_backend(exporter: Exporter, tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (make binaries)")
    backend = exporter.backend
    backend.register_process(1, 4242, 5000)
    backend.set_utilization(1, 0.75)
    exporter.view.publish(_lane_view(backend))
    uuid1 = backend.gpus()[1].uuid

    with RealPrometheus.start([exporter.target], tmp_path / "prom") as prom:
        used = prom.wait_for(f'gpulane_gpu_memory_used_bytes{{UUID="{uuid1}"}}')
        assert float(used[0]["value"][1]) == (5000 + 256) * MIB
        assert used[0]["metric"]["Hostname"] == NODE and used[0]["metric"]["modelName"] == "Fake-GPU-16G"
        assert float(prom.query('gpulane_gpu_utilization_ratio{gpu="1"}')[0]["value"][1]) == 0.75
        assert float(prom.query('gpulane_gpu_temperature_celsius{gpu="1"}')[0]["value"][1]) == 41
        assert float(prom.query('gpulane_gpu_sm_clock_hertz{gpu="1"}')[0]["value"][1]) == 1590e6
        assert prom.query('{__name__=~"DCGM_.+"}') == []  # default mode: nothing under dcgm-exporter's names
        assert float(prom.query("sum(gpulane_gpu_memory_total_bytes)")[0]["value"][1]) == 4 * 16 * 1024 * MIB
        lane = prom.query('gpulane_lane_used_bytes{lane="lane-1"} / gpulane_lane_size_bytes{lane="lane-1"}')
        assert float(lane[0]["value"][1]) == pytest.approx(3000 / 4096)
        assert float(prom.query('gpulane_pod_memory_limit_bytes{pod="trainer"}')[0]["value"][1]) == 5120 * MIB

        # The fake changes: the process exits and GPU 2 is lost. Prometheus sees both on later scrapes.
        backend.unregister_process(4242)
        backend.lose_gpu(2)
        prom.wait_for(f'gpulane_gpu_memory_used_bytes{{UUID="{uuid1}"}} == {256 * MIB}')
        prom.wait_for('gpulane_gpu_healthy{gpu="2"} == 0')
        prom.wait_for('gpulane_backend_errors_total{operation="memory"} > 0')
        assert float(prom.query("count(gpulane_gpu_healthy == 1)")[0]["value"][1]) == 3
        assert prom.query('up{job="gpulane"}')[0]["value"][1] == "1"  # the scrape never failed
