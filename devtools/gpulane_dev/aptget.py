"""Install Debian packages (Prometheus, a real node's containerd, ...) without starting services or prompting.

No PyPI wheel ships Prometheus or containerd; Debian does (bookworm: 2.42.0, 1.6.20). A package's postinst may try to start
its daemon through invoke-rc.d; a policy-rc.d that exits 101 forbids that, and it is removed again
only if we created it, so a machine's own policy survives.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from gpulane_dev.commands import Reporter, run, timed
from gpulane_dev.settings import CacheLayout

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# Exit status 101 means "action forbidden" to invoke-rc.d and deb-systemd-invoke.
POLICY_RC_D_TEXT = "#!/bin/sh\n# written by gpulane_dev.aptget while installing packages\nexit 101\n"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a", "APT_LISTCHANGES_FRONTEND": "none"}
APT_OPTIONS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


class AptUnavailable(RuntimeError):
    """apt-get cannot be used here; the message gives the command a person should run instead."""


def install_prometheus(
    package: str,
    cache: CacheLayout,
    reporter: Reporter,
    *,
    apt_get: str | None = None,
    policy_rc_d: Path = POLICY_RC_D,
    is_root: bool | None = None,
) -> None:
    """Debian's Prometheus (and promtool): see `install_packages`."""
    install_packages([package], cache, reporter, why="prometheus is not on PATH", apt_get=apt_get,
                     policy_rc_d=policy_rc_d, is_root=is_root)  # fmt: skip


def install_packages(
    packages: Sequence[str],
    cache: CacheLayout,
    reporter: Reporter,
    *,
    why: str,
    apt_get: str | None = None,
    policy_rc_d: Path = POLICY_RC_D,
    is_root: bool | None = None,
) -> None:
    """`apt-get update` then `apt-get install --no-install-recommends <packages>`, as root, no daemon.

    `apt_get`, `policy_rc_d` and `is_root` default to the real system; tests inject them.
    """
    apt = apt_get or shutil.which("apt-get")
    names = " ".join(packages)
    manual = f"sudo apt-get update && sudo apt-get install -y --no-install-recommends {names}"
    if apt is None:
        raise AptUnavailable(f"{why} and apt-get is missing; install them yourself, e.g. `{manual}`")
    if not (os.geteuid() == 0 if is_root is None else is_root):
        raise AptUnavailable(f"{why} and installing them needs root; run `{manual}`")
    log = cache.logs / "apt-get.log"
    created_policy = not policy_rc_d.exists()
    if created_policy:
        policy_rc_d.write_text(POLICY_RC_D_TEXT)
        policy_rc_d.chmod(0o755)
    try:
        reporter.say(f"apt-get update ({why}); log {log}")
        started = time.monotonic()
        run([apt, "-q", "update"], env=APT_ENV, log=log, timeout=900)
        reporter.say(f"apt-get install {names}")
        run(
            [apt, "-q", "-y", "--no-install-recommends", *APT_OPTIONS, "install", *packages],
            env=APT_ENV, log=log, timeout=1800,
        )  # fmt: skip
        timed(reporter, f"installed {names}", started)
    finally:
        if created_policy:
            policy_rc_d.unlink(missing_ok=True)
