"""Which settings the chart sets through dedicated values (flags, env, its own keys), so its generic
``operator.settings`` / ``nodeAgent.settings`` values hold exactly every *other* key of each tree."""

from __future__ import annotations

# The DaemonSet passes these as flags or env (from nodeAgent.backend, .metrics.port, ...), or they are
# tied to the mounts the template makes (proc root, PodResources socket), or fixed by the file format.
AGENT_FROM_CHART = frozenset({
    "version", "node_name", "backend.kind", "backend.fake_config", "metrics.port", "device_plugin.dir",
    "device_plugin.memory_unit_mib", "coordinator.socket", "enforcement.policy", "enforcement.proc_root",
    "metrics.dcgm_compat",
    "pod_resources.socket",
    "dra.enabled",  # from nodeAgent.allocation, with device_plugin.enabled=false (env in the DaemonSet)
})  # fmt: skip

# The settings ConfigMap renders these from operator.ordering, .placement, ...; peering.priority comes
# from the pod index (env) with replicas > 1.
OPERATOR_FROM_CHART = frozenset({
    "scheduling.ordering", "scheduling.placement", "scheduling.preemption", "scheduling.backfill",
    "scheduling.on_node_loss", "scope.namespaces", "scope.node_selector", "metrics.port", "peering.standalone",
    "peering.name", "peering.priority",
    "scheduling.allocation",  # from nodeAgent.allocation: jobs default to the mode the agents serve
})  # fmt: skip
