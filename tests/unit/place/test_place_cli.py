"""``gpulane place`` end to end on a tiny synthetic cluster: table, JSON, plot, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpulane_core.cli import main
from gpulane_sim.place.cli import parse_seeds

NODES = "sn,cpu_milli,memory_mib,gpu,model\n" + "".join(
    f"n-{i},{32000 if i % 2 else 96000},262144,{2 if i % 2 else 8},{'T4' if i % 2 else 'G2'}\n" for i in range(6)
)
SHAPES = ["4000,8192,1,500,", "8000,16384,1,1000,", "2000,4096,1,250,", "16000,32768,0,0,", "6000,8192,1,800,T4"]
PODS = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" + "".join(
    f"p-{i:03d},{SHAPES[i % len(SHAPES)]}\n" for i in range(40)
)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("GPULANE_SHARED_DATA", str(tmp_path / "no-shared-data"))
    nodes, pods = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    nodes.write_text(NODES)
    pods.write_text(PODS)
    return nodes, pods


def test_place_prints_a_table_and_writes_json_and_plot(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = files
    out, png = tmp_path / "out" / "place.json", tmp_path / "out" / "curves.png"
    argv = ["place", "--nodes", str(nodes), "--pods", str(pods), "--seeds", "1-2", "--policy", "fgd,random,fgd-balance,gpulane"]
    assert main([*argv, "--json", str(out), "--plot", str(png), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| fgd |" in table and "| random |" in table and "| fgd-balance |" in table
    assert "| gpulane |" in table  # the operator's lane-aware profile, run through the bridge
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {"fgd", "random", "fgd-balance", "gpulane"}
    for entry in doc["policies"].values():
        assert 0.0 < entry["final_allocation_ratio"] <= 1.0
        assert entry["seeds"] == [1, 2]
        xs = [x for x, _ in entry["curve"]]
        assert xs == sorted(xs) and xs[-1] == 130
        assert all(0.0 <= y <= 1.0 for _, y in entry["curve"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_published_figures_appear_when_the_workload_is_known(
    files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = files
    shared = tmp_path / "shared"
    shared.mkdir()
    header = "workload,sc_policy,tune,seed,total_gpus," + ",".join(str(i) for i in range(131))
    row = "pods,06-FGD,1.3,42,28," + ",".join("90.0" for _ in range(131))
    (shared / "fgd_expected_alloc.csv").write_text(f"{header}\n{row}\n")
    monkeypatch.setenv("GPULANE_SHARED_DATA", str(shared))
    assert main(["place", "--nodes", str(nodes), "--pods", str(pods), "--policy", "fgd", "--quiet"]) == 0
    assert "90.00%" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "fgd,teleport"], "unknown policy 'teleport'"),
        (["--seeds", "9-3"], "seeds: range 9-3 runs backwards"),
        (["--seeds", "x"], "seeds: not a seed list"),
        (["--inflation", "-1"], "inflation: must not be negative"),
    ],
)
def test_bad_flags_exit_2_and_write_nothing(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    nodes, pods = files
    out = tmp_path / "never.json"
    assert main(["place", "--nodes", str(nodes), "--pods", str(pods), "--json", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_trace_row_names_file_line_and_field(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, _ = files
    pods = tmp_path / "bad.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,1000,1,1,lots,\n")
    out = tmp_path / "never.json"
    assert main(["place", "--nodes", str(nodes), "--pods", str(pods), "--json", str(out)]) == 2
    assert f"{pods}:2: gpu_milli: not a number: 'lots'" in capsys.readouterr().err
    assert not out.exists()


def test_parse_seeds() -> None:
    assert parse_seeds(None, None) == (42,)
    assert parse_seeds(7, None) == (7,)
    assert parse_seeds(None, "42-44,50,42") == (42, 43, 44, 50)


def test_unwritable_output_is_a_one_line_error(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = files
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ["place", "--nodes", str(nodes), "--pods", str(pods), "--policy", "bestfit", "--quiet"]
    assert main([*argv, "--json", str(blocker / "out.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
