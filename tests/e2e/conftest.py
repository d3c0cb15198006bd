"""e2e tier: a real kind cluster in Docker. Skipped, with the reason, where Docker or kind is missing."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def docker_problem() -> str | None:
    """Why kind cannot run here, or None when it can."""
    for tool in ("docker", "kind"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (the e2e tier needs Docker and kind; see hack/kind-e2e.sh)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out: the Docker daemon does not answer"
    if info.returncode != 0:
        return f"the Docker daemon is not reachable: {(info.stderr or info.stdout).strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="session")
def kind_available() -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
