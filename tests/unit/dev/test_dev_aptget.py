"""Installing Prometheus with apt-get: non-interactive, no daemon started, the machine's policy kept."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from gpulane_dev.aptget import AptUnavailable, install_prometheus
from gpulane_dev.commands import CommandFailed, Reporter
from gpulane_dev.settings import CacheLayout


def fake_apt(tmp_path: Path, policy: Path, exit_code: int = 0) -> Path:
    """An apt-get stand-in that records its argv, env and whether the policy file existed."""
    script = tmp_path / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$* | $DEBIAN_FRONTEND | $(test -x {policy} && {policy}; echo $?)" >> {tmp_path / "calls"}\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return script


def test_update_then_install_with_daemon_starts_forbidden(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    apt = fake_apt(tmp_path, policy)
    install_prometheus("prometheus", CacheLayout(tmp_path / "cache"), Reporter(io.StringIO()),
                       apt_get=str(apt), policy_rc_d=policy, is_root=True)  # fmt: skip
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "-q update | noninteractive | 101"
    assert calls[1] == (
        "-q -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
        "install prometheus | noninteractive | 101"
    )
    assert not policy.exists()  # we created it, so we removed it


def test_an_existing_policy_is_left_alone(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    install_prometheus("prometheus", CacheLayout(tmp_path / "cache"), Reporter(None),
                       apt_get=str(fake_apt(tmp_path, policy)), policy_rc_d=policy, is_root=True)  # fmt: skip
    assert policy.read_text() == "#!/bin/sh\nexit 101\n"


def test_failure_reports_the_command_and_removes_our_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    apt = fake_apt(tmp_path, policy, exit_code=100)
    with pytest.raises(CommandFailed) as info:
        install_prometheus("prometheus", CacheLayout(tmp_path / "cache"), Reporter(None),
                           apt_get=str(apt), policy_rc_d=policy, is_root=True)  # fmt: skip
    assert f"command failed (exit 100): {apt} -q update" in str(info.value)
    assert not policy.exists()


def test_not_root_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(AptUnavailable) as info:
        install_prometheus("prometheus", CacheLayout(tmp_path), Reporter(None),
                           apt_get="/usr/bin/apt-get", policy_rc_d=tmp_path / "p", is_root=False)  # fmt: skip
    assert "needs root; run `sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus`" in str(
        info.value
    )
