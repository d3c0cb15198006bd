"""The chart under the real helm, for the chart's integration tests (test_chart*.py, test_dashboards_live.py):
one way to run helm and to render the chart into its objects."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "gpulane"
KIND_VALUES = CHART / "values-kind.yaml"
KUBE_VERSION = "1.37.2"


def run_helm(helm: Path, *args: str, kubeconfig: Path | None = None, check: bool = True) -> str:
    """helm's stdout and stderr together; a failure raises with both unless ``check`` is off."""
    argv = [str(helm), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def render(helm: Path, release: str, namespace: str, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """`helm template` (CRDs included); ``NAMESPACE`` in ``extra`` becomes ``namespace``."""
    args = [a.replace("NAMESPACE", namespace) for a in extra]
    out = run_helm(
        helm, "template", release, str(CHART), "--namespace", namespace, "--include-crds",
        "--kube-version", KUBE_VERSION, *args,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]
