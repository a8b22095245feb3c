"""Two processes writing different sequences to one SQLite file at once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.reliability.harness import CLI, REPO, record, trace

STEPS = 40


def test_two_writers_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen(
            [
                *CLI,
                "run",
                "--model",
                "fake:0",
                "--steps",
                str(STEPS),
                "--db",
                str(db),
                "--thread",
                f"writer-{i}",
                "--start",
                str(100 * i),
                "--json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=dict(os.environ),
        )
        for i in range(2)
    ]
    start = time.monotonic()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    elapsed = time.monotonic() - start
    codes = [p.returncode for p in procs]
    lengths = [len(trace(db, f"writer-{i}")) for i in range(2)]
    record(
        "two writers, one SQLite file",
        runs=2,
        survived=codes.count(0),
        steps_lost=2 * STEPS - sum(lengths),
        runs_failed=2 - codes.count(0),
        seconds=round(elapsed, 1),
        steps_per_second=round(2 * STEPS / elapsed, 1),
    )
    assert codes == [0, 0], errors
    assert not any("locked" in e for e in errors)
    assert lengths == [STEPS, STEPS]
