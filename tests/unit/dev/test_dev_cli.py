"""`gpulane dev-cluster` argument wiring (the commands themselves run in tests/integration)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from gpulane_dev import cli


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gpulane")
    cli.register(root.add_subparsers(dest="command"))
    return root


def test_up_defaults() -> None:
    args = parser().parse_args(["dev-cluster", "up"])
    assert (args.nodes, args.gpus_per_node, args.gpu_memory, args.no_agents) == (2, 4, "16Gi", False)
    assert args.func is cli._up


def test_state_dir_and_flags() -> None:
    args = parser().parse_args(["dev-cluster", "--state-dir", "/s", "up", "--nodes", "3", "--gpu-memory", "40Gi",
                                "--no-agents"])  # fmt: skip
    assert (args.state_dir, args.nodes, args.gpu_memory, args.no_agents) == ("/s", 3, "40Gi", True)
    assert cli._state_dir(args) == Path("/s")


def test_action_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["dev-cluster"])
    assert "ACTION" in capsys.readouterr().err


def test_default_state_dir_follows_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPULANE_CACHE", str(tmp_path))
    args = parser().parse_args(["dev-cluster", "status"])
    assert cli._state_dir(args) == tmp_path / "dev-cluster"


def test_the_repo_crds_are_found() -> None:
    found = cli.default_crds_dir()
    assert found is not None and (found / "gpunodes.gpulane.dev.yaml").exists()


def test_bad_gpu_memory_is_rejected_before_anything_starts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = parser().parse_args(["dev-cluster", "--state-dir", str(tmp_path), "up", "--gpu-memory", "3Gb"])
    assert args.func(args) == 1
    assert "gpulane dev-cluster up: --gpu-memory: '3Gb' is not a size" in capsys.readouterr().err
