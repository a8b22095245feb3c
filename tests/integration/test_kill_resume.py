"""`llm-as-rnn run` killed with SIGKILL mid-sequence resumes at the next step."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llm_as_rnn import open_storage, read_trace

pytestmark = pytest.mark.integration


def trace_steps(db: Path, thread: str) -> list[int]:
    async def read() -> list[int]:
        async with open_storage(str(db)) as (_, store):
            return [r["step"] for r in await read_trace(store, thread)]

    return asyncio.run(read())


def test_sigkill_then_rerun_resumes(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    args = [
        sys.executable,
        "-m",
        "llm_as_rnn",
        "run",
        "--model",
        "embedded",
        "--steps",
        "3",
        "--budget",
        "128",
        "--max-new-tokens",
        "24",
        "--seed",
        "3",
        "--db",
        str(db),
        "--thread",
        "k",
        "--json",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # step 1 is finished and saved
    assert first["step"] == 1
    os.kill(proc.pid, signal.SIGKILL)  # mid step 2
    proc.wait(timeout=30)
    done = trace_steps(db, "k")
    assert done[0] == 1
    assert done == list(range(1, len(done) + 1))
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in rerun.stdout.splitlines()]
    assert steps == list(range(len(done) + 1, 4))  # the next unfinished step onwards
    assert trace_steps(db, "k") == [1, 2, 3]  # nothing lost, nothing doubled
