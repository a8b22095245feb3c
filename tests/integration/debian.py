"""Install a Debian package for a test when the machine lacks it (root and apt-get needed)."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(package: str) -> None:
    """Install ``package`` with apt-get; do nothing where that is not possible."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", package], check=True, env=env, capture_output=True
    )
