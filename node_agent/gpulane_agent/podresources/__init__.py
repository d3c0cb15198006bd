"""The kubelet's PodResources API: which pod container holds which gpulane.dev/gpu-memory units."""
