from __future__ import annotations

from pathlib import Path

from gpulane_operator.k8s.api import _environment_matters


def test_environment_matters_only_with_a_proxy_variable_or_a_netrc_file(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert not _environment_matters(home)
    assert not _environment_matters({})
    assert _environment_matters({**home, "HTTPS_PROXY": "http://proxy:3128"})
    assert _environment_matters({**home, "all_proxy": "socks5://proxy"})
    assert not _environment_matters({**home, "NO_PROXY": "10.0.0.1"})  # alone it changes nothing
    (tmp_path / ".netrc").write_text("machine apiserver login a password b\n")
    assert _environment_matters(home)
    assert not _environment_matters({**home, "NETRC": str(tmp_path / "absent")})
