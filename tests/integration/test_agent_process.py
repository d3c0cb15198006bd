"""``gpulane agent`` as a real process: serves metrics with nothing else around, says once what it waits
for, registers when a kubelet appears, stops cleanly on SIGTERM; bad configuration exits 2 naming the field.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from gpulane_agent.deviceplugin._proto import api_pb2, api_pb2_grpc
from gpulane_dev.procs import free_port

pytestmark = pytest.mark.integration

GPULANE = str(Path(sys.executable).parent / "gpulane")


class Kubelet(api_pb2_grpc.RegistrationServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: asyncio.Queue[Any] = asyncio.Queue()

    async def Register(self, request: Any, context: Any) -> Any:
        await self.requests.put(request)
        return api_pb2.Empty()


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gl-proc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _unreachable_kubeconfig(path: Path) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:{free_port()}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    return path


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return str(resp.read().decode())
    except OSError:
        return None


async def test_agent_process_without_apiserver_serves_metrics_and_withholds_the_plugin(workdir: Path) -> None:
    port = free_port()
    log = workdir / "agent.log"
    argv = [GPULANE, "agent", "--backend", "fake", "--metrics-port", str(port), "--node-name", "solo",
            "--device-plugin-dir", str(workdir / "dp"), "--kubeconfig", str(_unreachable_kubeconfig(workdir / "kc")),
            "--coordinator-socket", str(workdir / "co" / "coordinator.sock"),
            "--fake-process-dir", str(workdir / "fake-gpu" / "processes")]
    env = {**os.environ, "GPULANE_AGENT_KUBERNETES_RETRY_MAX_S": "1", "GPULANE_AGENT_KUBERNETES_RETRY_INITIAL_S": "0.2"}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = None
    try:
        text = None
        for _ in range(200):
            text = _scrape(port)
            if text:
                break
            await asyncio.sleep(0.1)
        assert text is not None, log.read_text()
        assert 'gpulane_gpu_memory_total_bytes{Hostname="solo"' in text
        assert "gpulane_lane_turns_total" in text or "gpulane_lane_waiters" in text  # coordinator wired in
        assert (workdir / "fake-gpu" / "processes").is_dir()  # where pods will report their fake GPU memory

        await asyncio.sleep(3)  # several API retries happen meanwhile
        output = log.read_text()
        assert output.count("waiting for the Kubernetes API server") == 1, output
        # No GPUNode can be published, so the plugin says what it waits for and stays unregistered: a
        # node whose agent cannot read pod assignments must not advertise gpulane.dev/gpu-memory.
        assert output.count("registering with the kubelet once GPUNode solo is published") == 1, output

        kubelet = Kubelet()
        server = grpc.aio.server()
        api_pb2_grpc.add_RegistrationServicer_to_server(kubelet, server)
        (workdir / "dp").mkdir(exist_ok=True)  # the kubelet's device-plugin directory (the plugin has not made it)
        server.add_insecure_port(f"unix://{workdir / 'dp' / 'kubelet.sock'}")
        await server.start()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(kubelet.requests.get(), 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        if server is not None:
            await server.stop(grace=0)
    assert code == 0, log.read_text()
    assert not (workdir / "dp" / "gpulane.sock").exists()


def test_bad_configuration_exits_2_naming_the_field(workdir: Path) -> None:
    started = time.monotonic()
    result = subprocess.run([GPULANE, "agent", "--backend", "fake", "--metrics-port", "99999"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "metrics.port: must be 0..65535" in result.stderr
    bad_spec = workdir / "fake.yaml"
    bad_spec.write_text("version: v1\ngpus: [{memory: lots}]\n")
    result = subprocess.run([GPULANE, "agent", "--backend", "fake", "--fake-config", str(bad_spec)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "gpus[0].memory" in result.stderr, result.stderr
    result = subprocess.run([GPULANE, "agent", "--backend", "fake", "--fake-process-dir", "run/fake"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "backend.fake_process_dir: must be an absolute path" in result.stderr
    assert time.monotonic() - started < 120
