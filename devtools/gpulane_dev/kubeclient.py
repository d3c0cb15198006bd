"""One typed way to get a `kubernetes` (sync) ApiClient for a kubeconfig file.

The client's kubeconfig loader is untyped; keeping the one call here keeps every caller `mypy --strict`
clean, and gives tests and tools a client bound to an explicit file, never the process-global default.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client
from kubernetes import config as kube_config


def api_client(kubeconfig: Path | str) -> client.ApiClient:
    """A new ApiClient for `kubeconfig`'s current context; close it when done."""
    made: client.ApiClient = kube_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return made
