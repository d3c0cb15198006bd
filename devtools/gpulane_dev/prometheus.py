"""A real Prometheus for tests and benchmarks: scrape given targets every second, query with PromQL.

Used by the agent's exporter tests and the dashboards' semantic checks. It starts the system's
``prometheus`` binary (Debian's, installed by ``make binaries``) on a free loopback port with a private
TSDB directory, waits for ``/-/ready``, and stops the whole process group on exit::

    with RealPrometheus.start(["127.0.0.1:9400"], workdir) as prom:
        prom.wait_for("up == 1")
        prom.query('gpulane_gpu_memory_used_bytes{gpu="0"}')  # -> list of {"metric": ..., "value": [...]}
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from gpulane_dev import procs

READY_TIMEOUT_S = 30.0


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or answered a query with an error."""


def find_prometheus() -> Path:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None)
    if not found:
        raise PrometheusError(
            "prometheus binary not found on PATH: run `make binaries` "
            "(or apt-get install --no-install-recommends prometheus)"
        )
    return Path(found)


def scrape_config(targets: Sequence[str], interval_s: float = 1.0, job: str = "gpulane") -> dict[str, Any]:
    """The prometheus.yml for ``targets`` (``host:port``), scraped every ``interval_s``."""
    if not targets:
        raise PrometheusError("targets: give at least one host:port to scrape")
    every = f"{int(interval_s * 1000)}ms"
    return {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "scrape_configs": [{"job_name": job, "scrape_interval": every, "static_configs": [{"targets": list(targets)}]}],
    }


class RealPrometheus:
    """A running Prometheus process; use as a context manager or call ``stop()``."""

    def __init__(self, proc: procs.Supervised, port: int) -> None:
        self._proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    def start(
        cls, targets: Sequence[str], workdir: Path, interval_s: float = 1.0, binary: Path | None = None
    ) -> RealPrometheus:
        binary = binary or find_prometheus()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(targets, interval_s)))
        port = procs.free_port()
        spec = procs.ProcessSpec(
            name="prometheus",
            argv=(
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1h",
            ),
            log=workdir / "prometheus.log",
        )
        proc = procs.start(spec, die_with_parent=True)
        prom = cls(proc, port)
        try:
            procs.wait_until(prom.ready, what=f"Prometheus /-/ready on {prom.url}", timeout=READY_TIMEOUT_S, watch=[proc])
        except procs.StartupFailed:
            proc.stop()
            raise
        return prom

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the ``data.result`` list (vector samples have ``metric`` and ``value``)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise PrometheusError(f"query {promql!r} failed: HTTP {exc.code}: {detail}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} failed: {body.get('error', body)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns a non-empty result (e.g. after the first scrapes)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"query {promql!r} still empty after {timeout:.0f}s\n{self._proc.log_tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        self._proc.stop()

    def __enter__(self) -> RealPrometheus:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
