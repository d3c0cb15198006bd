"""dcgm-exporter's families, for ``--dcgm-compat`` (``metrics.dcgm_compat``) on clusters without it.

Only what NVML honestly provides, under dcgm-exporter's names, help texts (its etc/default-counters.csv),
units (%, MiB, C, W, MHz) and labels (``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``,
``Hostname``), so dashboards built for dcgm-exporter (Grafana 12239) work unchanged. Profiling fields
(``DCGM_FI_PROF_*``) need DCGM's own profiling and are never produced. Where dcgm-exporter runs, leave
this off: the same series would then exist twice (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gpulane_core.quantity import MIB
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from gpulane_agent.exporter import names as n
from gpulane_agent.exporter.readings import GpuSample
from gpulane_agent.gpu.backend import HardwareReadings


@dataclass(frozen=True, slots=True)
class DcgmField:
    name: str
    help: str
    value: Callable[[GpuSample], float | None]  # in dcgm-exporter's unit; None: no sample this scrape


def _hardware(pick: Callable[[HardwareReadings], int | None]) -> Callable[[GpuSample], float | None]:
    def value(sample: GpuSample) -> float | None:
        raw = pick(sample.hardware) if sample.hardware is not None else None
        return float(raw) if raw is not None else None

    return value


def _power_watts(sample: GpuSample) -> float | None:
    mw = sample.hardware.power_milliwatts if sample.hardware is not None else None
    return mw / 1000.0 if mw is not None else None


def _util_percent(sample: GpuSample) -> float | None:
    return float(round(sample.utilization * 100.0)) if sample.utilization is not None else None


def _fb_used(sample: GpuSample) -> float | None:
    return float(sample.memory.used_bytes // MIB) if sample.memory is not None else None


def _fb_free(sample: GpuSample) -> float | None:
    return float(sample.memory.free_bytes // MIB) if sample.memory is not None else None


# In dcgm-exporter's default-counters.csv order.
FIELDS = (
    DcgmField(n.DCGM_SM_CLOCK, "SM clock frequency (in MHz).", _hardware(lambda h: h.sm_clock_mhz)),
    DcgmField(n.DCGM_MEM_CLOCK, "Memory clock frequency (in MHz).", _hardware(lambda h: h.memory_clock_mhz)),
    DcgmField(n.DCGM_GPU_TEMP, "GPU temperature (in C).", _hardware(lambda h: h.temperature_celsius)),
    DcgmField(n.DCGM_POWER_USAGE, "Power draw (in W).", _power_watts),
    DcgmField(n.DCGM_GPU_UTIL, "GPU utilization (in %).", _util_percent),
    DcgmField(n.DCGM_MEM_COPY_UTIL, "Memory utilization (in %).", _hardware(lambda h: h.memory_copy_percent)),
    DcgmField(n.DCGM_FB_FREE, "Framebuffer memory free (in MiB).", _fb_free),
    DcgmField(n.DCGM_FB_USED, "Framebuffer memory used (in MiB).", _fb_used),
)


def dcgm_labels(sample: GpuSample, hostname: str) -> list[str]:
    """Values for ``names.DCGM_LABELS``, as dcgm-exporter fills them for a whole (non-MIG) GPU."""
    gpu = sample.info
    return [str(gpu.index), gpu.uuid, gpu.pci_bus_id, f"nvidia{gpu.index}", gpu.model, hostname]


def dcgm_families(samples: tuple[GpuSample, ...], hostname: str) -> Iterator[Metric]:
    for field in FIELDS:
        family = GaugeMetricFamily(field.name, field.help, labels=n.DCGM_LABELS)
        for sample in samples:
            value = field.value(sample)
            if value is not None:
                family.add_metric(dcgm_labels(sample, hostname), value)
        yield family
