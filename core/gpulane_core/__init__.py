"""gpulane_core: the pure scheduling core shared by the operator, the node agent and the simulator.

Nothing in this package performs I/O or imports a Kubernetes client, gRPC, NVML or Prometheus
(enforced by import-linter): decisions are plain functions over frozen dataclasses.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
