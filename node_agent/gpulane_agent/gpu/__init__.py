"""GPU hardware behind one Protocol: NVML on real nodes, a scripted fake for tests, null when absent."""
