"""The sample workload: what it holds when, its report file, one line per turn, and clear refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from gpulane_client import workload
from gpulane_client.workload import Plan, WorkloadError, plan
from gpulane_core.fakegpu import parse_report
from gpulane_core.quantity import MIB

ENV = {"GPULANE_PERSISTENT_MIB": "1024", "GPULANE_EPHEMERAL_MIB": "2048", "GPULANE_MEMORY_LIMIT_MIB": "3584",
       "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b", "GPULANE_JOB": "team/a", "GPULANE_LANE_ID": "GPU-a/lane-1"}


def test_persistent_memory_stays_and_ephemeral_memory_comes_with_the_turn() -> None:
    assert plan(ENV, 0, None) == Plan(("GPU-a", "GPU-b"), (1024 * MIB,) * 2, (3072 * MIB,) * 2, 2048 * MIB)


def test_over_use_holds_the_limit_plus_the_excess_for_the_whole_run_on_the_chosen_gpus() -> None:
    every = plan(ENV, 100, None)
    assert every.resident == every.in_turn == ((3584 + 100) * MIB,) * 2
    second = plan(ENV, 100, 1)
    assert second.resident == (1024 * MIB, 3684 * MIB)
    assert second.in_turn == (3072 * MIB, 3684 * MIB)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"GPULANE_PERSISTENT_MIB": ""}, r"^GPULANE_PERSISTENT_MIB: not set"),
        ({"GPULANE_EPHEMERAL_MIB": "2Gi"}, r"^GPULANE_EPHEMERAL_MIB: must be an integer number of MiB, got '2Gi'"),
        ({"GPULANE_EPHEMERAL_MIB": "-1"}, r"^GPULANE_EPHEMERAL_MIB: must not be negative"),
        ({"CUDA_VISIBLE_DEVICES": " , "}, r"^CUDA_VISIBLE_DEVICES: not set"),
    ],
)
def test_bad_assignment_env_is_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        plan({**ENV, **change}, 0, None)


def test_over_use_needs_the_limit_and_a_gpu_of_the_job() -> None:
    with pytest.raises(WorkloadError, match=r"^GPULANE_MEMORY_LIMIT_MIB: not set"):
        plan({k: v for k, v in ENV.items() if k != "GPULANE_MEMORY_LIMIT_MIB"}, 5, None)
    assert plan({k: v for k, v in ENV.items() if k != "GPULANE_MEMORY_LIMIT_MIB"}, 0, None).gpus  # not needed
    with pytest.raises(WorkloadError, match=r"^--over-use-gpu: must be 0..1 \(the job has 2 GPUs\), got 2"):
        plan(ENV, 5, 2)


def test_a_run_reports_its_memory_turn_by_turn_prints_one_line_each_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, int]] = []

    def compute(seconds: float) -> None:  # called inside each turn: what does the report say now?
        (path,) = list(tmp_path.iterdir())
        report = parse_report(path.read_text())
        assert (report.pid_namespace, report.pid) == (os.stat("/proc/self/ns/pid").st_ino, os.getpid())
        assert path.name == report.file_name
        seen.append(dict(report.used_bytes))

    monkeypatch.setattr(workload.time, "sleep", compute)
    assert workload.main(["--iterations", "3", "--iteration-seconds", "0"], {**ENV, "GPULANE_FAKE_GPU_DIR": str(tmp_path)}) == 0
    assert seen == [{"GPU-a": 3072 * MIB, "GPU-b": 3072 * MIB}] * 3
    assert list(tmp_path.iterdir()) == []  # removed on the way out
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"gpulane-workload: job=team/a iteration={i}/3 lane=GPU-a/lane-1 turn=0 held_bytes={2 * 3072 * MIB}"
        for i in (1, 2, 3)
    ]


def test_between_turns_only_the_persistent_memory_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[dict[str, int]] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        written.append(json.loads(Path(src).read_text())["used_bytes"])
        real_replace(src, dst)

    monkeypatch.setattr(workload.os, "replace", replace)
    monkeypatch.setattr(workload.time, "sleep", lambda s: None)
    env = {**ENV, "GPULANE_FAKE_GPU_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "GPU-a"}
    assert workload.main(["--iterations", "2"], env) == 0
    resident, in_turn = {"GPU-a": 1024 * MIB}, {"GPU-a": 3072 * MIB}
    assert written == [resident, in_turn, resident, in_turn, resident]


def test_without_a_report_directory_it_runs_and_says_memory_is_not_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(workload.time, "sleep", lambda s: None)
    assert workload.main(["--iterations", "1"], ENV) == 0
    out, err = capsys.readouterr()
    assert "GPULANE_FAKE_GPU_DIR is not set: memory is not reported" in err
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--iterations", "0"], ENV, "--iterations: must be at least 1, got 0"),
        (["--iteration-seconds", "-1"], ENV, "--iteration-seconds: must not be negative"),
        (["--over-use", "-5"], ENV, "--over-use: must not be negative"),
        (["--over-use-gpu", "0"], ENV, "--over-use-gpu: needs --over-use"),
        (["--iterations", "many"], ENV, "argument --iterations: invalid int value: 'many'"),
        ([], {**ENV, "GPULANE_PERSISTENT_MIB": "x"}, "error: GPULANE_PERSISTENT_MIB: must be an integer"),
        ([], {**ENV, "GPULANE_FAKE_GPU_DIR": "/nonexistent/gl"}, "error: GPULANE_FAKE_GPU_DIR: no such directory"),
    ],
)
def test_bad_flags_or_env_exit_2_with_a_clear_message(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = workload.main(argv, env)
    except SystemExit as exc:  # argparse's own exit
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err
