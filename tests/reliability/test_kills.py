"""SIGKILL at seeded random moments: nothing lost or doubled, one extra call per kill at most."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn.core.memfile import MemoryFile, render
from llm_as_rnn.evals.config import REFERENCES
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.storage import open_storage
from tests.reliability.harness import (
    CLI,
    comparable,
    fault_server,
    record,
    run_args,
    run_cli,
    trace,
    wait_for,
)

STEPS = 30


def kill_until_done(args: list[str], server, rng: random.Random, max_kills: int) -> tuple[int, int]:
    """Start ``args`` again and again, each time SIGKILLed after a random number of
    completions, until ``max_kills``; then let it finish. Returns (kills, runs)."""
    kills = runs = 0
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    while kills < max_kills:
        before = server.stats()["completions"]
        target = before + rng.randint(1, 5)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        runs += 1
        wait_for(
            lambda p=proc, t=target: p.poll() is not None or server.stats()["completions"] >= t,
            120,
        )
        if proc.poll() is not None:
            assert proc.returncode == 0
            return kills, runs
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    final = run_cli(args)
    runs += 1
    assert final.returncode == 0, final.stderr[-2000:]
    return kills, runs


@pytest.mark.parametrize(
    ("structured", "max_kills"), [("supported", 22), ("refused", 8)]
)  # refused: each process asks once for structured outputs, then free text
def test_run_killed_equals_uninterrupted(tmp_path: Path, structured: str, max_kills: int) -> None:
    rng = random.Random(20261126)
    refused = structured == "refused"
    # 50 ms a call: a kill lands while the call after the awaited one is in flight
    with fault_server(seed=1, latency=0.05, no_structured=refused) as server:
        reference = run_cli(run_args(server.url, tmp_path / "ref.db", "ref", STEPS))
        assert reference.returncode == 0, reference.stderr[-2000:]
        expected = trace(tmp_path / "ref.db", "ref")
        server.reset()
        args = run_args(server.url, tmp_path / "kill.db", "ref", STEPS)
        kills, runs = kill_until_done(args, server, rng, max_kills=max_kills)
        stats = server.stats()
    got = trace(tmp_path / "kill.db", "ref")
    steps = [r["step"] for r in got]
    record(
        "SIGKILL during run" + (", structured outputs refused" if refused else ""),
        runs=runs,
        survived=runs - kills,
        kills=kills,
        steps_lost=STEPS - len(set(steps)),
        duplicate_calls=stats["duplicate_completions"],
    )
    assert kills == max_kills
    assert steps == list(range(1, STEPS + 1))  # none missing, none doubled
    assert comparable(got) == comparable(expected)  # same memory, trace, usage
    assert got[-1]["memory_after"] == expected[-1]["memory_after"]
    assert stats["duplicate_completions"] <= kills


@pytest.mark.parametrize(("structured", "max_kills"), [("supported", 5), ("refused", 3)])
def test_eval_killed_equals_uninterrupted(tmp_path: Path, structured: str, max_kills: int) -> None:
    rng = random.Random(7)
    refused = structured == "refused"
    common = [
        "eval",
        "--tasks",
        "weather,sp500",
        "--methods",
        "zero-shot,fhc,memprompt,rnn,rnn-judge",
        "--sequences",
        "2",
        "--steps",
        "4",
        "--budget",
        "200",
        "--model",
        "openai:fault-model",
        "--timeout",
        "1",
        "--concurrency",
        "1",
    ]  # one call in flight at a kill
    with fault_server(seed=2, latency=0.05, no_structured=refused) as server:
        straight = run_cli([*CLI, *common, "--base-url", server.url, "--out", str(tmp_path / "a")])
        assert straight.returncode == 0, straight.stderr[-2000:]
        # rnn and rnn-judge send some identical prompts (same h_0, same day): not extra calls
        same_prompts = server.stats()["duplicate_completions"]
        server.reset()
        args = [*CLI, *common, "--base-url", server.url, "--out", str(tmp_path / "b")]
        kills, runs = kill_until_done(args, server, rng, max_kills=max_kills)
        extra = server.stats()["duplicate_completions"] - same_prompts
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    every = [json.loads(x) for x in (tmp_path / "b" / "steps.jsonl").read_text().splitlines()]
    steps = [r for r in every if r["method"] not in REFERENCES]  # model steps
    keys = {(r["task"], r["method"], r["sequence"], r["step"]) for r in steps}
    total = 2 * 5 * 2 * 4
    record(
        "SIGKILL during eval" + (", structured outputs refused" if refused else ""),
        runs=runs,
        survived=runs - kills,
        kills=kills,
        steps_lost=total - len(keys),
        duplicate_calls=extra,
    )
    assert kills == max_kills
    assert a == b
    assert len(steps) == len(keys) == total
    assert 0 <= extra <= kills


def test_warm_started_run_killed_equals_uninterrupted(tmp_path: Path) -> None:
    rng = random.Random(23)
    memory = (
        "## PATTERNS\n- Falling pressure: rain within a day.\n\n"
        "## RECENT ERRORS\n- None yet.\n\n## RULES OF THUMB\n- After two dry days, predict dry."
    )
    learned = tmp_path / "learned.json"
    learned.write_text(render(MemoryFile(memory=memory, task="weather", origin={"step": 5})))
    steps = 12
    with fault_server(seed=3, latency=0.05) as server:
        warm = ("--init-memory", str(learned))
        reference = run_cli(run_args(server.url, tmp_path / "ref.db", "w", steps, *warm))
        assert reference.returncode == 0, reference.stderr[-2000:]
        expected = trace(tmp_path / "ref.db", "w")
        server.reset()
        args = run_args(server.url, tmp_path / "kill.db", "w", steps, *warm)
        kills, _ = kill_until_done(args, server, rng, max_kills=6)
    got = trace(tmp_path / "kill.db", "w")
    assert kills == 6
    assert got[0]["memory_before"] == memory
    assert [r["step"] for r in got] == list(range(1, steps + 1))
    assert comparable(got) == comparable(expected)

    async def imports(db: Path) -> list[Any]:
        async with open_storage(str(db)) as (_, store):
            return [item.value for item in await store.asearch(namespaces.imported("w"))]

    recorded = asyncio.run(imports(tmp_path / "kill.db"))
    assert recorded == asyncio.run(imports(tmp_path / "ref.db"))  # recorded once, the same
    assert len(recorded) == 1
    assert recorded[0]["source"] == "learned.json"
