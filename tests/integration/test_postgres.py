"""Two worker processes share one PostgreSQL database; results equal one process."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from llm_as_rnn.evals.config import REFERENCES
from tests.integration.postgres import postgres_server

pytestmark = pytest.mark.integration

EVAL = [
    sys.executable,
    "-m",
    "llm_as_rnn",
    *shlex.split(
        "eval --tasks weather,sp500 --methods zero-shot,fhc,memprompt,rnn,rnn-judge "
        "--model fake:0:5 --sequences 4 --steps 5 --budget 300"
    ),
]


def test_two_workers_on_postgres_equal_one_process(tmp_path: Path) -> None:
    single = subprocess.run(
        [*EVAL, "--out", str(tmp_path / "single")], capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 0, single.stderr[-2000:]
    with postgres_server() as url:
        workers = [
            subprocess.Popen(
                [*EVAL, "--out", str(tmp_path / f"w{i}"), "--db", url, "--shard", f"{i}/2"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        errors = [w.communicate(timeout=300)[1] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], errors
        # Any process can then write the whole report from the shared state: nothing is left to run.
        final = subprocess.run(
            [*EVAL, "--out", str(tmp_path / "final"), "--db", url],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert final.returncode == 0, final.stderr[-2000:]
    a = json.loads((tmp_path / "single" / "summary.json").read_text())
    b = json.loads((tmp_path / "final" / "summary.json").read_text())
    assert a == b
    steps = [json.loads(x) for x in (tmp_path / "final" / "steps.jsonl").read_text().splitlines()]
    assert len([r for r in steps if r["method"] not in REFERENCES]) == 2 * 5 * 4 * 5


async def test_leases_on_postgres_refuse_a_busy_thread_and_take_over_a_dead_one() -> None:
    import asyncio
    import contextvars
    import time

    from llm_as_rnn import open_storage
    from llm_as_rnn.runtime.leases import Holder, ThreadBusyError, holding, me
    from llm_as_rnn.runtime.storage import leases_of

    with postgres_server() as url:
        async with open_storage(url) as (_, store):
            leases = leases_of(store)
            assert leases is not None

            async def attempt() -> None:
                async with holding(leases, "user.42"):
                    pass

            async with holding(leases, "user.42"):
                with pytest.raises(ThreadBusyError, match="is being run by process"):
                    await asyncio.create_task(attempt(), context=contextvars.Context())
            takers = await asyncio.gather(*(leases.take("race", me()) for _ in range(6)))
            assert sum(t is None for t in takers) == 1
            gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            dead = Holder("dead", me().host, int(gone.stdout), time.time())
            assert await leases.take("dead.thread", dead, ttl=3600) is None
            assert await leases.take("dead.thread", me()) is None


async def test_trace_reads_postgres_without_creating_tables() -> None:
    import psycopg

    from llm_as_rnn import open_storage
    from llm_as_rnn.runtime import namespaces

    async def tables(url: str) -> set[str]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cursor = await conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            return {row[0] for row in await cursor.fetchall()}

    trace = [sys.executable, "-m", "llm_as_rnn", "trace", "--db"]
    with postgres_server() as url:
        out = subprocess.run([*trace, url], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().endswith("holds no llm-as-rnn tables: give the --db of a run")
        assert await tables(url) == set()  # a reader ran no migrations
        async with open_storage(url) as (_, store):
            await store.aput(namespaces.trace("user.42"), "0001", {"step": 1})
        created = await tables(url)
        listed = subprocess.run([*trace, url], capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split()[:3] == ["user.42", "1", "step"]
        assert await tables(url) == created
