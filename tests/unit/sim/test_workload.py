"""Workload loaders: the native CSV/YAML format, Salus and Tiresias traces, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_core.model import JobClass
from gpulane_sim.workload import WorkloadError, load_workload

HEADER = "name,arrival_s,gpus,persistent_mib,ephemeral_mib,iteration_s,iterations,working_set_mib"


def _write(tmp_path: Path, text: str, name: str = "w.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_native_csv_with_quantities_comments_and_optional_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"# a comment\n{HEADER},class,priority\n"
        "a,0,1,2Gi,512Mi,0.5,10,1Gi,best-effort,3\n"
        "b,1.5,2,100,200,1,4,0,,\n",
    )
    w = load_workload(path)
    a, b = w.jobs
    assert (a.persistent_mib, a.ephemeral_mib, a.working_set_mib) == (2048, 512, 1024)
    assert a.job_class is JobClass.BEST_EFFORT and a.priority == 3
    assert (b.gpus, b.arrival_s, b.job_class) == (2, 1.5, JobClass.GUARANTEED)
    assert w.lines == {"a": 3, "b": 4}


def test_native_yaml_list_and_mapping(tmp_path: Path) -> None:
    entry = (
        "  - {name: y, arrival_s: 0, gpus: 1, persistent_mib: 1Gi, ephemeral_mib: 1Gi,"
        " iteration_s: 1, iterations: 2, working_set_mib: 0}\n"
    )
    as_list = load_workload(_write(tmp_path, entry.replace("  - ", "- "), "l.yaml"))
    as_map = load_workload(_write(tmp_path, "jobs:\n" + entry, "m.yml"))
    assert as_list.jobs == as_map.jobs and as_list.jobs[0].persistent_mib == 1024


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a,0,1,-5,10,1,1,0", "w.csv:2: persistent_mib: must not be negative, got -5"),
        ("a,0,1,lots,10,1,1,0", "w.csv:2: persistent_mib: 'lots' is not a size (use e.g. 512Mi, 16Gi, 2G)"),
        ("a,0,1,5,10,fast,1,0", "w.csv:2: iteration_s: 'fast' is not a number"),
        ("a,0,1,5,10,1,1.5,0", "w.csv:2: iterations: must be a whole number, got 1.5"),
        ("a,0,1,5,10,1,1", "w.csv:2: row has 7 fields, header has 8"),
        ("a,0,1,5,10,1,1,0\na,1,1,5,10,1,1,0", "w.csv:3: name: 'a' repeats line 2"),
        ("a,0,0,5,10,1,1,0", "w.csv:2: gpus: must be at least 1, got 0"),
        ("a,0,1,0,0,1,1,0", "w.csv:2: persistent_mib + ephemeral_mib: a job must need some GPU memory"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, f"{HEADER}\n{body}\n")
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    assert str(err.value) == f"{tmp_path}/{message}"
    assert "\n" not in str(err.value)


def test_empty_file_bad_header_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no jobs"):
        load_workload(_write(tmp_path, "", "empty.csv"))
    with pytest.raises(WorkloadError, match="no jobs"):
        load_workload(_write(tmp_path, HEADER + "\n", "header-only.csv"))
    with pytest.raises(WorkloadError, match=r"header: missing column\(s\) working_set_mib"):
        load_workload(
            _write(tmp_path, "name,arrival_s,gpus,persistent_mib,ephemeral_mib,iteration_s,iterations\n")
        )
    with pytest.raises(WorkloadError, match="cannot read"):
        load_workload(tmp_path / "absent.csv")
    with pytest.raises(WorkloadError, match="unknown workload format 'xml'"):
        load_workload(_write(tmp_path, HEADER + "\n"), "xml")


def test_salus_trace(shared_data: Path) -> None:
    w = load_workload(shared_data / "salus_workloads.csv")
    assert len(w.jobs) == 99
    first = w.jobs[0]
    # vgg11_25_1min: JCT 67.059 s over 565 iterations; peak 3709.6 MB = 3538 MiB, 25 % persistent.
    assert first.name == "vgg11_25_1min" and first.iterations == 565
    assert first.iteration_s == pytest.approx(67.059 / 565)
    assert (first.persistent_mib, first.ephemeral_mib) == (885, 2653)
    assert first.working_set_mib == first.persistent_mib
    assert len({j.name for j in w.jobs}) == 99  # the repeated vgg16_100_1min row is kept, renamed


def test_tiresias_trace(shared_data: Path) -> None:
    w = load_workload(shared_data / "tiresias_60_job.csv")
    assert len(w.jobs) == 60
    first = w.jobs[0]  # 0,1,0,606,vgg19,164,30
    assert (first.gpus, first.arrival_s, first.iterations) == (1, 0.0, 606)
    assert first.iteration_s == pytest.approx(164 / 606)
    assert first.footprint_mib == 4257  # vgg19 batch 25: 4463.1 MB
    assert max(j.gpus for j in w.jobs) == 8
