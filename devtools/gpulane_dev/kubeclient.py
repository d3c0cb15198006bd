"""One typed way to get a `kubernetes` (sync) ApiClient for a kubeconfig file.

The client's kubeconfig loader is untyped; keeping the one call here keeps every caller `mypy --strict`
clean, and gives tests and tools a client bound to an explicit file, never the process-global default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from kubernetes import client
from kubernetes import config as kube_config


def api_client(kubeconfig: Path | str) -> client.ApiClient:
    """A new ApiClient for `kubeconfig`'s current context; close it when done."""
    made: client.ApiClient = kube_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return made


@contextlib.contextmanager
def connected(kubeconfig: Path | str) -> Iterator[client.ApiClient]:
    """`api_client` as a context manager that closes the client's connection pool afterwards."""
    api = api_client(kubeconfig)
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]
