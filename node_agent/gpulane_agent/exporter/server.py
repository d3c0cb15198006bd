"""The metrics HTTP endpoint: a private CollectorRegistry served by prometheus_client on its own thread.

A private registry (not the library's global REGISTRY) keeps the agent free of module-level state and
lets tests run several agents in one process.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


def make_registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


class MetricsServer:
    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        self._registry = registry
        self._address = address
        self._port = port
        self._httpd: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return int(self._httpd.server_port) if self._httpd is not None else self._port

    def start(self) -> None:
        self._httpd, self._thread = start_http_server(self._port, addr=self._address, registry=self._registry)
        log.info("metrics on http://%s:%d/metrics", self._address, self.port)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
