"""One writer per thread: leases in the database, refused while held, taken over when dead."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_as_rnn import open_storage
from llm_as_rnn.runtime.leases import Holder, Leases, ThreadBusyError, holding, me
from llm_as_rnn.runtime.storage import leases_of

CLI = [sys.executable, "-m", "llm_as_rnn"]


async def hold_elsewhere(leases: Leases, thread: str) -> None:
    """Try the lease from a task of its own (as another caller would), and let it go."""

    async def attempt() -> None:
        async with holding(leases, thread):
            pass

    await asyncio.create_task(attempt(), context=contextvars.Context())


async def test_a_held_thread_is_refused_then_free_again(tmp_path: Path) -> None:
    async with open_storage(str(tmp_path / "l.db")) as (_, store):
        leases = leases_of(store)
        assert isinstance(leases, Leases)
        async with holding(leases, "t.1") as outer:
            busy = rf"thread 't.1' is being run by process {os.getpid()}"
            with pytest.raises(ThreadBusyError, match=busy):
                await hold_elsewhere(leases, "t.1")
            await hold_elsewhere(leases, "other")  # other threads are free
            async with holding(leases, "t.1") as inner:  # nested in the holder: reused
                assert inner is outer
        await hold_elsewhere(leases, "t.1")  # released: free again
        assert await leases.holder("t.1") is None


async def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = Holder("dead-token", me().host, int(done.stdout), time.time())
    async with open_storage(str(tmp_path / "l.db")) as (_, store):
        leases = leases_of(store)
        assert leases is not None
        assert await leases.take("t", dead, ttl=3600) is None
        mine = me()
        assert await leases.take("t", mine) is None  # not an hour later: now
        holder = await leases.holder("t")
        assert holder is not None
        assert holder[0].token == mine.token


async def test_a_holder_elsewhere_is_waited_for_until_its_lease_expires(tmp_path: Path) -> None:
    far = Holder("far", "another-host", 1, time.time())
    async with open_storage(str(tmp_path / "l.db")) as (_, store):
        leases = leases_of(store)
        assert leases is not None
        assert await leases.take("t", far, ttl=0.5) is None
        assert await leases.take("t", me()) == far
        await asyncio.sleep(0.6)
        assert await leases.take("t", me()) is None


async def test_racing_takers_never_both_win(tmp_path: Path) -> None:
    async with open_storage(str(tmp_path / "l.db")) as (_, store):
        leases = leases_of(store)
        assert leases is not None
        takers = [me() for _ in range(8)]
        refused = await asyncio.gather(*(leases.take("t", h) for h in takers))
        assert sum(r is None for r in refused) == 1


async def test_renewal_keeps_a_lease_alive(tmp_path: Path) -> None:
    async with open_storage(str(tmp_path / "l.db")) as (_, store):
        leases = leases_of(store)
        assert leases is not None
        async with holding(leases, "t", ttl=0.3) as lease:
            await asyncio.sleep(0.7)  # longer than the TTL: renewed meanwhile
            assert await leases.take("t", Holder("x", "another-host", 1, 0.0)) is not None
            lease.check()


def test_two_runs_on_one_thread_and_a_takeover_after_kill(tmp_path: Path) -> None:
    db = str(tmp_path / "run.db")
    # Long enough (20 steps x 3 calls x 300 ms) that the first run still holds the thread
    # when the second has started, even on a loaded machine.
    args = [*CLI, "run", "--model", "fake:0:300", "--steps", "20", "--budget", "96",
            "--db", db, "--thread", "shared", "--json"]  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout is not None
    json.loads(first.stdout.readline())  # step 1 is done: the first run holds the thread
    started = time.monotonic()
    second = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 2, second.stderr
    assert time.monotonic() - started < 5 + 10  # refused at once (interpreter start aside)
    assert f"is being run by process {first.pid}" in second.stderr
    assert second.stderr.count("\n") == 1
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    third = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert third.returncode == 0, third.stderr
    trace = subprocess.run([*CLI, "trace", "--db", db, "--thread", "shared"],
                           capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    steps = [int(n) for n in __import__("re").findall(r"step (\d+)/20", trace.stdout)]
    assert steps == list(range(1, 21))
