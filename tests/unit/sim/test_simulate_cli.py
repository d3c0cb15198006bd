"""`gpulane simulate`: the table, the JSON contract, the PNG, exit code 2 and nothing half-written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from gpulane_sim.cli import register_simulate

HEADER = "name,arrival_s,gpus,persistent_mib,ephemeral_mib,iteration_s,iterations,working_set_mib"
SMALL = f"{HEADER}\na,0,1,1Gi,2Gi,0.5,6,1Gi\nb,0,1,1Gi,3Gi,0.2,10,512Mi\nc,1,1,2Gi,2Gi,1.0,3,2Gi\n"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register_simulate(parser.add_subparsers())
    args = parser.parse_args(["simulate", *argv])
    return int(args.func(args))


def test_json_has_the_contract_keys_for_every_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = tmp_path / "w.csv"
    workload.write_text(SMALL)
    out = tmp_path / "out" / "m.json"
    code = _run([str(workload), "--policy", "fifo,srtf,pack,fair,weight,ga", "--gpus", "1", "--json", str(out),
                 "--ga-generations", "2"])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert list(data["policies"]) == ["fifo", "srtf", "pack", "fair", "weight", "ga"]
    for metrics in data["policies"].values():
        for key in (
            "makespan_s",
            "avg_jct_s",
            "p95_jct_s",
            "avg_queueing_s",
            "gpu_utilization",
            "bytes_moved",
        ):
            assert key in metrics
        assert 0 < metrics["gpu_utilization"] <= 1
    table = capsys.readouterr().out
    assert "makespan (s)" in table and "srtf" in table and f"metrics: {out}" in table
    assert [p.name for p in out.parent.iterdir()] == ["m.json"]  # no temp file left behind


def test_plot_writes_a_png(tmp_path: Path) -> None:
    workload = tmp_path / "w.csv"
    workload.write_text(SMALL)
    png = tmp_path / "g.png"
    assert _run([str(workload), "--policy", "fifo,pack", "--gpus", "2", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "body", "message"),
    [
        (["--policy", "fifo,lifo"], SMALL, "--policy: unknown policy 'lifo'"),
        ([], f"{HEADER}\na,0,1,-1,2,1,1,0\n", "w.csv:2: persistent_mib: must not be negative, got -1"),
        ([], f"{HEADER}\na,0,1,abc,2,1,1,0\n", "w.csv:2: persistent_mib: 'abc' is not a size"),
        ([], "", "w.csv: the workload has no jobs"),
        (["--gpu-memory", "3Gi"], SMALL, "w.csv:3: persistent_mib + ephemeral_mib: job b needs 4Gi"),
        (["--gpu-memory", "2Gi"], SMALL, "larger than every GPU (2Gi)"),
        (["--gpus", "zero"], SMALL, "gpus (from flag): expected an integer, got 'zero'"),
        (["--bandwidth", "fast"], SMALL, "bandwidth (from flag): 'fast' is not a bandwidth"),
        (["--colocation-slowdown", "lots"], SMALL, "colocation_slowdown (from flag): could not convert"),
        (["--placement", "best"], SMALL, "unknown placement policy 'best'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], body: str, message: str
) -> None:
    workload = tmp_path / "w.csv"
    workload.write_text(body)
    out = tmp_path / "m.json"
    png = tmp_path / "g.png"
    code = _run([str(workload), "--json", str(out), "--plot", str(png), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("gpulane simulate: error: ") and message in err and "\n" not in err
    assert not out.exists() and not png.exists()


def test_flag_beats_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpulane_sim.settings import load_settings

    settings = tmp_path / "sim.yaml"
    settings.write_text("gpus: 3\ngpu-memory: 8Gi\nprefetch: off\n")
    env = {"GPULANE_SIM_GPUS": "5", "GPULANE_SIM_BANDWIDTH": "12GB/s"}
    cfg = load_settings({"gpus": "7", "seed": None}, env=env, file=settings)
    assert (cfg.gpus, cfg.gpu_memory_mib, cfg.prefetch, cfg.bandwidth_bytes_s) == (7, 8192, False, 12e9)
    assert load_settings({}, env=env, file=settings).gpus == 5
    assert load_settings({}, env={}, file=settings).gpus == 3
    assert load_settings({}, env={"GPULANE_SIM_CONFIG": str(settings)}).gpus == 3  # the file named by env


def test_lucid_calibration_reads_the_shared_file(shared_data: Path) -> None:
    from gpulane_sim.settings import load_settings, lucid_slowdown

    factor = lucid_slowdown(shared_data / "lucid_colocate_info.csv")
    # 1,388 pairs, mean normalised speed ~0.937 -> each co-runner stretches an iteration by ~6.8 %.
    assert 0.05 < factor < 0.09
    cfg = load_settings({"colocation_slowdown": "lucid"}, env={}, data_dir=shared_data)
    assert cfg.colocation_slowdown == factor


def test_settings_errors_name_their_source(tmp_path: Path) -> None:
    from gpulane_sim.settings import SettingsError, load_settings

    bad_file = tmp_path / "sim.yaml"
    bad_file.write_text("gpus: 2\nturbo: on\n")
    with pytest.raises(SettingsError, match=r"turbo \(from .*sim.yaml\): unknown setting"):
        load_settings({}, env={}, file=bad_file)
    with pytest.raises(SettingsError, match=r"prefetch \(from env GPULANE_SIM_PREFETCH\): expected true or false"):
        load_settings({}, env={"GPULANE_SIM_PREFETCH": "maybe"})
    with pytest.raises(SettingsError, match="gpus: must be at least 1, got 0"):
        load_settings({"gpus": "0"}, env={})


def test_progress_in_a_log_is_plain_lines_one_per_ten_percent(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from gpulane_sim import cli

    clock = iter([0.0, 3.0, 3.01, 3.02, 3.03, 3.04])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    log = io.StringIO()  # not a terminal
    bar = cli._ProgressBar(log)
    for fraction in (0.05, 0.07, 0.12, 0.55, 1.0):
        bar(what="fifo", fraction=fraction)
    bar.close()
    assert log.getvalue().splitlines() == ["progress:   0% fifo", "progress:  10% fifo", "progress:  50% fifo",
                                           "progress: 100% fifo"]  # fmt: skip
    assert "\r" not in log.getvalue()


def test_simulate_runs_any_registered_placement_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The FGD family is a placement profile like the lane-aware ones (one registry, one name each)."""
    workload = tmp_path / "w.csv"
    workload.write_text(SMALL)
    assert _run([str(workload), "--policy", "fifo", "--placement", "fgd", "--json", str(tmp_path / "m.json")]) == 0
    assert "placement fgd" in capsys.readouterr().out
