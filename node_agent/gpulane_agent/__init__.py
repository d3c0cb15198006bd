"""gpulane_agent: the per-node agent (device plugin, GPU inventory, lane enforcement, exporter, coordinator)."""
