"""Install Debian's `prometheus` (which ships promtool) without starting its service or prompting.

No PyPI wheel ships Prometheus; Debian does (bookworm: 2.42.0). A package's postinst may try to start
its daemon through invoke-rc.d; a policy-rc.d that exits 101 forbids that, and it is removed again
only if we created it, so a machine's own policy survives.
"""

from __future__ import annotations

import os
import shutil
import time
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
    """`apt-get update` then `apt-get install --no-install-recommends <package>`, as root, no daemon.

    `apt_get`, `policy_rc_d` and `is_root` default to the real system; tests inject them.
    """
    apt = apt_get or shutil.which("apt-get")
    manual = f"sudo apt-get update && sudo apt-get install -y --no-install-recommends {package}"
    if apt is None:
        raise AptUnavailable(f"prometheus is not on PATH and apt-get is missing; install Prometheus "
                             f"2.x (prometheus and promtool) yourself, e.g. `{manual}`")  # fmt: skip
    if not (os.geteuid() == 0 if is_root is None else is_root):
        raise AptUnavailable(f"prometheus is not on PATH and installing it needs root; run `{manual}`")
    log = cache.logs / "apt-get.log"
    created_policy = not policy_rc_d.exists()
    if created_policy:
        policy_rc_d.write_text(POLICY_RC_D_TEXT)
        policy_rc_d.chmod(0o755)
    try:
        reporter.say(f"apt-get update (prometheus is not on PATH); log {log}")
        started = time.monotonic()
        run([apt, "-q", "update"], env=APT_ENV, log=log, timeout=900)
        reporter.say(f"apt-get install {package}")
        run(
            [apt, "-q", "-y", "--no-install-recommends", *APT_OPTIONS, "install", package],
            env=APT_ENV, log=log, timeout=1800,
        )  # fmt: skip
        timed(reporter, f"installed {package}", started)
    finally:
        if created_policy:
            policy_rc_d.unlink(missing_ok=True)
