"""A stand-in for NVIDIA's dcgm-exporter on the same node as an agent: its series for the same GPUs.

It serves what dcgm-exporter serves with its etc/default-counters.csv, in the format of its
internal/pkg/rendermetrics/render_metrics.go (NVIDIA/dcgm-exporter d5e5f510): one ``# HELP``/``# TYPE``
block per field, then one line per GPU with the labels ``gpu``, ``UUID``, ``pci_bus_id``, ``device``
(``nvidia<index>``), ``modelName``, the host label and the ``label`` fields of the counters file
(``DCGM_FI_DRIVER_VERSION``, unless left out of the counters file); integer fields print as ``%d``, double fields as ``%f``. The host label is
``Hostname`` in released dcgm-exporters and ``hostname`` since its PR #655, so both can be served. The
readings come from the same FakeBackend the agent reads, as both exporters read the same GPUs.
Profiling fields (``DCGM_FI_PROF_*``) and fields NVML cannot give the agent are served too, as a real
dcgm-exporter would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gpulane_agent.gpu.backend import GpuError, GpuInfo, HardwareReadings, MemoryInfo
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_core.quantity import MIB

DRIVER_VERSION = "570.124.06"


@dataclass(frozen=True)
class Reading:
    info: GpuInfo
    memory: MemoryInfo
    utilization: float
    hardware: HardwareReadings


@dataclass(frozen=True)
class Field:
    name: str
    prom_type: str
    help: str
    value: Callable[[Reading], int | float | None]
    double: bool = False


# etc/default-counters.csv (d5e5f510), in its order; each value in DCGM's unit for the field.
FIELDS = (
    Field("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda r: r.hardware.sm_clock_mhz),
    Field("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda r: r.hardware.memory_clock_mhz),
    Field("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).",
          lambda r: None if r.hardware.temperature_celsius is None else r.hardware.temperature_celsius + 4),
    Field("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda r: r.hardware.temperature_celsius),
    Field("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).",
          lambda r: None if r.hardware.power_milliwatts is None else r.hardware.power_milliwatts / 1000, double=True),
    Field("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
          lambda r: 123_456_789),
    Field("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", lambda r: 0),
    Field("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda r: round(r.utilization * 100)),
    Field("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda r: r.hardware.memory_copy_percent),
    Field("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", lambda r: 0),
    Field("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", lambda r: 0),
    Field("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", lambda r: 0),
    Field("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda r: r.memory.free_bytes // MIB),
    Field("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda r: r.memory.used_bytes // MIB),
    Field("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", lambda r: 0),
    Field("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
          lambda r: r.utilization * 0.9, double=True),
    Field("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
          lambda r: r.utilization * 0.4, double=True),
    Field("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
          "Ratio of cycles the device memory interface is active sending or receiving data.",
          lambda r: r.utilization * 0.3, double=True),
)
FAMILIES = tuple(f.name for f in FIELDS)


def render(backend: FakeBackend, hostname: str, host_label: str = "Hostname",
           driver_version: str | None = DRIVER_VERSION) -> str:
    """dcgm-exporter's exposition for every readable GPU of ``backend`` (a GPU it cannot read is left out)."""
    driver = f',DCGM_FI_DRIVER_VERSION="{driver_version}"' if driver_version else ""
    readings = list(_readings(backend))
    lines: list[str] = []
    for field in FIELDS:
        lines += [f"# HELP {field.name} {field.help}", f"# TYPE {field.name} {field.prom_type}"]
        for r in readings:
            value = field.value(r)
            if value is None:
                continue  # DCGM's blank value: dcgm-exporter skips the line
            gpu = r.info
            labels = (f'gpu="{gpu.index}",UUID="{gpu.uuid}",pci_bus_id="{gpu.pci_bus_id}",device="nvidia{gpu.index}",'
                      f'modelName="{gpu.model}",{host_label}="{hostname}"{driver}')
            text = f"{value:f}" if field.double else f"{int(value):d}"
            lines.append(f"{field.name}{{{labels}}} {text}")
    return "\n".join(lines) + "\n"


def _readings(backend: FakeBackend) -> Iterator[Reading]:
    for gpu in backend.gpus():
        try:
            yield Reading(gpu, backend.memory(gpu.index), backend.utilization(gpu.index), backend.hardware(gpu.index))
        except GpuError:
            continue


class DcgmStandIn:
    """Serves ``render()`` on 127.0.0.1:<free port>/metrics until stopped; a context manager."""

    def __init__(self, backend: FakeBackend, hostname: str, host_label: str = "Hostname",
                 driver_version: str | None = DRIVER_VERSION) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = render(standin.backend, standin.hostname, standin.host_label, standin.driver_version).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.backend, self.hostname, self.host_label, self.driver_version = backend, hostname, host_label, driver_version
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="dcgm-standin", daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> DcgmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
