"""Trace loaders: good rows become frozen values, bad rows name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_core.fragmentation.types import PodShape
from gpulane_sim.place.trace import TraceError, load_nodes, load_pods

NODES = "sn,cpu_milli,memory_mib,gpu,model\nn-0,64000,262144,2,P100\nn-1,96000,393216,8,G2\n"
PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
    "p-0,12000,16384,1,1000,,LS,Running,0,1,0\n"
    "p-1,6000,12288,1,460,V100M16|V100M32,LS,Running,0,1,0\n"
    "p-2,8000,30517,0,0,,BE,Running,0,1,0\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_nodes_and_pods(tmp_path: Path) -> None:
    nodes = load_nodes(write(tmp_path, "n.csv", NODES))
    assert [(n.name, n.model, n.gpu_milli_left) for n in nodes] == [
        ("n-0", "P100", (1000, 1000)),
        ("n-1", "G2", (1000,) * 8),
    ]
    pods = load_pods(write(tmp_path, "p.csv", PODS))
    assert pods[0].shape == PodShape(12000, 1, 1000, (), 16384)
    assert pods[1].shape.gpu_types == ("V100M16", "V100M32")
    assert pods[2].shape.num_gpu == 0


def test_every_published_pod_layout_loads_with_the_fgd_converter_defaults(tmp_path: Path) -> None:
    # The variant: no gpu_spec, qos, phase or times. Absent gpu_spec = any GPU model.
    short = load_pods(write(tmp_path, "a.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np-0,4000,15258,1,220\n"))
    assert short == load_pods(write(tmp_path, "b.csv", PODS.splitlines()[0] + "\np-0,4000,15258,1,220,nan,BE,Running,0,1,0\n"))
    assert short[0].shape == PodShape(4000, 1, 220, (), 15258)
    # No gpu_milli: whole GPUs; no memory_mib: no memory request; job_id names, cpu in cores.
    bare = load_pods(write(tmp_path, "c.csv", "job_id,cpu,num_gpu\n7,2.5,2\n8,1,0\n"))
    assert [(p.name, p.shape) for p in bare] == [
        ("job-0007", PodShape(2500, 2, 1000, (), 0)),
        ("job-0008", PodShape(1000, 0, 0, (), 0)),
    ]
    assert load_pods(write(tmp_path, "d.csv", "name,num_cpu,num_gpu,gpu_milli\nq,4,1,500\n"))[0].shape.cpu_milli == 4000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.csv:1: empty file"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n", "p.csv: no pods"),
        ("name,cpu_milli,memory_mib,gpu_milli\np,1,1,1\n", "p.csv:1: num_gpu: missing column"),
        ("cpu_milli,num_gpu\n1,1\n", "p.csv:1: name: missing column (or job_id"),
        ("name,memory_mib,num_gpu\np,1,1\n", "p.csv:1: cpu_milli: missing column (or cpu, num_cpu"),
        ("job_id,cpu,num_gpu\nx,1,1\n", "p.csv:2: job_id: not a number"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,x,1,1,100,\n", "p.csv:2: cpu_milli: not a number"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,1,1,-1,0,\n", "p.csv:2: num_gpu: must be at least 0"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,1,1,1,1500,\n", "p.csv:2: gpu_milli: must be within"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,1,1,2,500,\n", "p.csv:2: gpu_milli: a pod with 2"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n,1,1,1,500,\n", "p.csv:2: name: empty pod name"),
    ],
)
def test_bad_pod_files_name_the_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "p.csv", text)
    with pytest.raises(TraceError) as info:
        load_pods(path)
    assert str(info.value).startswith(str(tmp_path / expected.split(":")[0]))
    assert expected.split(":", 1)[1] in str(info.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("sn,cpu_milli,memory_mib,gpu\nn,1,1,1\n", "model"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn,1,1,2,\n", "model"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn,1,1,1,T4\nn,1,1,1,T4\n", "sn"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn,1.5e,1,1,T4\n", "cpu_milli"),
    ],
)
def test_bad_node_files_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(TraceError) as info:
        load_nodes(write(tmp_path, "n.csv", text))
    assert info.value.field == field


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_nodes(tmp_path / "nope.csv")
