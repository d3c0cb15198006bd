"""The fake GPU's process-report format: it round-trips, and every malformed field is named."""

from __future__ import annotations

import json

import pytest
from gpulane_core.fakegpu import (
    ProcessReport,
    ReportError,
    format_report,
    innermost_pid,
    is_report_name,
    parse_report,
)


def test_a_report_round_trips_and_names_its_file_after_the_writer() -> None:
    report = ProcessReport(pid_namespace=4026532201, pid=7, used_bytes={"GPU-a": 3 << 30, "GPU-b": 0})
    assert parse_report(format_report(report)) == report
    assert report.file_name == "4026532201-7.json"
    assert json.loads(format_report(report)) == {
        "version": "v1", "pid_namespace": 4026532201, "pid": 7, "used_bytes": {"GPU-a": 3 << 30, "GPU-b": 0},
    }


GOOD = {"version": "v1", "pid_namespace": 4026532201, "pid": 7, "used_bytes": {"GPU-a": 1}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "v2"}, r"^version: must be 'v1', got 'v2'"),
        ({"pid": "7"}, r"^pid: must be an integer, got '7'"),
        ({"pid": 0}, r"^pid: must be positive, got 0"),
        ({"pid": True}, r"^pid: must be an integer"),
        ({"pid_namespace": -1}, r"^pid_namespace: must be positive"),
        ({"used_bytes": [1]}, r"^used_bytes: must map GPU UUIDs to bytes"),
        ({"used_bytes": {"GPU-a": -5}}, r"^used_bytes.GPU-a: must be a non-negative integer, got -5"),
        ({"used_bytes": {"GPU-a": 1.5}}, r"^used_bytes.GPU-a: must be a non-negative integer"),
        ({"used_bytes": {" ": 1}}, r"^used_bytes: a GPU UUID is empty"),
        ({"host_pid": 1}, r"^host_pid: unknown field"),
    ],
)
def test_a_malformed_field_is_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_report(json.dumps({**GOOD, **change}))


def test_a_missing_field_or_a_file_that_is_not_an_object_is_named() -> None:
    with pytest.raises(ReportError, match=r"^pid: must be an integer, got None"):
        parse_report(json.dumps({k: v for k, v in GOOD.items() if k != "pid"}))
    with pytest.raises(ReportError, match=r"^\(file\): not JSON"):
        parse_report('{"version": "v1",')
    with pytest.raises(ReportError, match=r"^\(file\): must hold a JSON object, got list"):
        parse_report("[]")


def test_writers_temporary_files_are_not_reports() -> None:
    assert is_report_name("4026532201-7.json")
    assert not is_report_name(".4026532201-7.json.tmp")
    assert not is_report_name(".4026532201-7.json")
    assert not is_report_name("notes.txt")


def test_innermost_pid_is_the_last_nspid_field() -> None:
    assert innermost_pid("Name:\tpython\nNSpid:\t81234\t7\nPPid:\t1\n") == 7
    assert innermost_pid("Name:\tinit\nNSpid:\t1\n") == 1
    assert innermost_pid("Name:\told-kernel\n") is None  # kernels before 4.1 have no NSpid
    assert innermost_pid("NSpid:\n") is None
    assert innermost_pid("NSpid:\tx\n") is None
