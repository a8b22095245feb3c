"""A real PostgreSQL server for tests, on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.debian import apt_install
from tests.integration.serving import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def ensure_postgres() -> tuple[str, str]:
    """Return (initdb, pg_ctl), installing Debian's postgresql package when missing."""
    if _bin("initdb") is None:
        apt_install("postgresql")
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    assert initdb, "PostgreSQL is missing and could not be installed"
    assert pg_ctl, "PostgreSQL is missing and could not be installed"
    return initdb, pg_ctl


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster; yield its connection URL."""
    initdb, pg_ctl = ensure_postgres()
    # The server refuses to run as root: run it as the postgres user when we are root.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="llm-as-rnn-pg-"))
    if as_user:
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data / "db"), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=100"
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data / "db"),
            "-o",
            options,
            "-l",
            str(data / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)
