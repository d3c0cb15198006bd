"""Choose the GpuBackend from configuration, honouring ``fail_on_init`` (NVIDIA device plugin's factory).

With ``fail_on_init: false`` a node whose NVML cannot start logs why and runs on NullBackend: it keeps
serving metrics and registers with zero devices, instead of crash-looping the DaemonSet. The fake backend
also reads the process reports of ``backend.fake_process_dir``, resolving host PIDs under ``proc_root``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from gpulane_agent.gpu.backend import BackendInitError, GpuBackend
from gpulane_agent.gpu.fake import FakeBackend
from gpulane_agent.gpu.fake_processes import ProcessFiles
from gpulane_agent.gpu.null import NullBackend
from gpulane_agent.settings import BackendConfig, BackendKind

log = logging.getLogger(__name__)


def _load_nvml() -> GpuBackend:
    from gpulane_agent.gpu.nvml import NvmlBackend

    return NvmlBackend.load()


def make_backend(
    config: BackendConfig,
    node_name: str,
    load_nvml: Callable[[], GpuBackend] = _load_nvml,
    *,
    proc_root: str = "/proc",
) -> GpuBackend:
    """The configured backend; NVML failures fall back to null unless ``fail_on_init`` is set."""
    if config.kind is BackendKind.NULL:
        return NullBackend("backend.kind is null")
    if config.kind is BackendKind.FAKE:
        files = _process_files(config.fake_process_dir, proc_root)
        if config.fake_config:
            return FakeBackend.from_file(Path(config.fake_config), node_name, files)
        return FakeBackend.default(node_name, files)
    try:
        return load_nvml()
    except BackendInitError as exc:
        if config.fail_on_init:
            raise
        log.warning("NVML unavailable, running with no GPUs (backend.fail_on_init is false): %s", exc)
        return NullBackend(str(exc))


def _process_files(directory: str, proc_root: str) -> ProcessFiles | None:
    if not directory:
        return None
    files = ProcessFiles(Path(directory), Path(proc_root))
    try:
        files.ensure_directory()
    except OSError as exc:  # e.g. a read-only root filesystem without the host directory mounted
        log.warning(
            "backend.fake_process_dir: cannot create %s (%s); reports appear only once it exists "
            "(mount the host directory at the same path, or set backend.fake_process_dir to '' to turn this off)",
            directory, exc,
        )
    return files
