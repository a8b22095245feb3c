"""Helpers of the reliability suite: the fault server, CLI runs, traces, the figures log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from llm_as_rnn import open_storage, read_trace
from tests.integration.serving import free_port

REPO = Path(__file__).resolve().parents[2]
LOG = Path(os.environ.get("RELIABILITY_LOG", REPO / ".cache" / "reliability.jsonl"))
CLI = [sys.executable, "-m", "llm_as_rnn"]


COUNTERS = ("kills", "steps_lost", "duplicate_calls", "faults_injected", "runs_failed")


def record(kind: str, **figures: Any) -> None:
    """Append one row of figures to the reliability log (read by ``make reliability``).

    The counters of ``COUNTERS`` that a row does not give are 0.
    """
    LOG.parent.mkdir(parents=True, exist_ok=True)
    row = {"kind": kind, **dict.fromkeys(COUNTERS, 0), **figures}
    with LOG.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


@dataclass
class FaultServer:
    """A running fault server process."""

    port: int
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json())

    def reset(self) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/reset", timeout=5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(port: int | None = None, **options: Any) -> FaultServer:
    """Start the fault server on 127.0.0.1 and wait until it listens."""
    port = port or free_port()
    args = [sys.executable, "-m", "tests.reliability.fault_server", "--port", str(port)]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is not False:  # True: a switch on; False: off (not given)
            args += [flag] if value is True else [flag, str(value)]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("ready"), line
    return FaultServer(port, process)


@contextmanager
def fault_server(**options: Any) -> Iterator[FaultServer]:
    """Run a fault server for the duration of a block."""
    server = start_server(**options)
    try:
        yield server
    finally:
        server.stop()


def run_args(server_url: str, db: Path, thread: str, steps: int, *extra: str) -> list[str]:
    """The `llm-as-rnn run` command line against a fault server."""
    return [
        *CLI,
        "run",
        "--model",
        "openai:fault-model",
        "--base-url",
        server_url,
        "--steps",
        str(steps),
        "--budget",
        "160",
        "--db",
        str(db),
        "--thread",
        thread,
        "--json",
        "--timeout",
        "1",
        "--retries",
        "4",
        *extra,
    ]


def run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "test-key")}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def trace(db: Path, thread: str) -> list[dict[str, Any]]:
    """Return a thread's step records from a database."""

    async def read() -> list[dict[str, Any]]:
        async with open_storage(str(db)) as (_, store):
            return list(await read_trace(store, thread))

    return asyncio.run(read())


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop what legitimately differs between runs (timings, retries)."""
    out = []
    for r in records:
        usage = {
            role: {k: v for k, v in u.items() if k not in ("latency_s", "retries")}
            for role, u in r["usage"].items()
        }
        out.append({**r, "usage": usage})
    return out


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
