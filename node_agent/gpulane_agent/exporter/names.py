"""Metric and label names of the agent, the only place they are spelled (docs/contracts.md, docs/metrics.md).

Dashboards and the chart's rules use exactly these. Labels follow dcgm-exporter where they overlap
(``gpu``, ``UUID``, ``modelName``, ``Hostname``, ``device``, ``pci_bus_id``) and Kubernetes' instrumentation
guideline for workloads (``namespace``, ``pod``, ``container``). The ``DCGM_FI_*`` names are exported only
with ``metrics.dcgm_compat`` (``--dcgm-compat``), for clusters that run no dcgm-exporter (docs/metrics.md).
"""

from __future__ import annotations

# per GPU
GPU_UTILIZATION_RATIO = "gpulane_gpu_utilization_ratio"
GPU_MEMORY_USED_BYTES = "gpulane_gpu_memory_used_bytes"
GPU_MEMORY_TOTAL_BYTES = "gpulane_gpu_memory_total_bytes"
GPU_HEALTHY = "gpulane_gpu_healthy"
GPU_INFO = "gpulane_gpu_info"
GPU_TEMPERATURE_CELSIUS = "gpulane_gpu_temperature_celsius"
GPU_POWER_WATTS = "gpulane_gpu_power_watts"
GPU_SM_CLOCK_HERTZ = "gpulane_gpu_sm_clock_hertz"
GPU_MEMORY_CLOCK_HERTZ = "gpulane_gpu_memory_clock_hertz"
GPU_MEMORY_COPY_UTILIZATION_RATIO = "gpulane_gpu_memory_copy_utilization_ratio"
# per lane
LANE_SIZE_BYTES = "gpulane_lane_size_bytes"
LANE_USED_BYTES = "gpulane_lane_used_bytes"
LANE_JOBS = "gpulane_lane_jobs"
# per pod
POD_MEMORY_USED_BYTES = "gpulane_pod_memory_used_bytes"
POD_MEMORY_LIMIT_BYTES = "gpulane_pod_memory_limit_bytes"
# counters (exposition names; the client library renders the _total suffix)
LANE_VIOLATIONS_TOTAL = "gpulane_lane_violations_total"
ALLOCATIONS_TOTAL = "gpulane_allocations_total"
BACKEND_ERRORS_TOTAL = "gpulane_backend_errors_total"
# dcgm-exporter's own families (--dcgm-compat only), in its units: %, MiB, C, W, MHz
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
DCGM_MEM_COPY_UTIL = "DCGM_FI_DEV_MEM_COPY_UTIL"
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"
DCGM_FB_FREE = "DCGM_FI_DEV_FB_FREE"
DCGM_GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
DCGM_POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
DCGM_SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
DCGM_MEM_CLOCK = "DCGM_FI_DEV_MEM_CLOCK"

# labels
GPU = "gpu"
UUID = "UUID"
MODEL_NAME = "modelName"
HOSTNAME = "Hostname"
DEVICE = "device"
PCI_BUS_ID = "pci_bus_id"
NAMESPACE = "namespace"
POD = "pod"
CONTAINER = "container"
LANE = "lane"
ACTION = "action"
RESULT = "result"
OPERATION = "operation"

GPU_LABELS = (GPU, UUID, MODEL_NAME, HOSTNAME)
# dcgm-exporter's label set, in its order (internal/pkg/rendermetrics/render_metrics.go)
DCGM_LABELS = (GPU, UUID, PCI_BUS_ID, DEVICE, MODEL_NAME, HOSTNAME)
LANE_LABELS = (GPU, UUID, LANE, HOSTNAME)
POD_USED_LABELS = (NAMESPACE, POD, CONTAINER, LANE, UUID, HOSTNAME)
POD_LIMIT_LABELS = (NAMESPACE, POD, LANE, UUID, HOSTNAME)

GPULANE_METRICS = (
    GPU_UTILIZATION_RATIO, GPU_MEMORY_USED_BYTES, GPU_MEMORY_TOTAL_BYTES, GPU_HEALTHY, GPU_INFO,
    GPU_TEMPERATURE_CELSIUS, GPU_POWER_WATTS, GPU_SM_CLOCK_HERTZ, GPU_MEMORY_CLOCK_HERTZ,
    GPU_MEMORY_COPY_UTILIZATION_RATIO,
    LANE_SIZE_BYTES, LANE_USED_BYTES, LANE_JOBS, POD_MEMORY_USED_BYTES, POD_MEMORY_LIMIT_BYTES,
    LANE_VIOLATIONS_TOTAL, ALLOCATIONS_TOTAL, BACKEND_ERRORS_TOTAL,
)
DCGM_METRICS = (
    DCGM_GPU_UTIL, DCGM_MEM_COPY_UTIL, DCGM_FB_USED, DCGM_FB_FREE, DCGM_GPU_TEMP, DCGM_POWER_USAGE,
    DCGM_SM_CLOCK, DCGM_MEM_CLOCK,
)
ALL_METRICS = GPULANE_METRICS + DCGM_METRICS
