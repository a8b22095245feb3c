"""Continuous batching: rows join a running batch between passes and leave when done.

The engine is tested with a batch made of plain Python rows (each pass adds
one token to every row); ``test_running_batch.py`` tests the real decoder.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.engine import BATCH_ENV, Engine, max_batch_from_env

WAIT = 60.0  # generous: a busy machine is slow, never wrong


@dataclass(eq=False)
class FakeRow:
    name: str
    length: int
    tokens: list[str] = field(default_factory=list)


class FakeBatch:
    """Each pass appends ``name + index`` to every row; a row is done at ``length`` tokens."""

    def __init__(self, mergeable: bool = True) -> None:
        self.rows: list[FakeRow] = []
        self.mergeable = mergeable
        self.fail_on: str | None = None  # admitting a row of this name raises
        self.passes: list[list[str]] = []  # the rows of every pass, in order
        self.permits: threading.Semaphore | None = None  # when set, a pass takes one
        self.stepped = threading.Event()
        self.finished: list[str] = []  # names, in the order rows finished
        self.fail_pass: int | None = None  # this pass (1-based) raises, once

    def can_admit(self) -> bool:
        return not self.rows or self.mergeable

    def admit(self, rows: Sequence[FakeRow]) -> list[FakeRow]:
        for row in rows:
            if row.name == self.fail_on:
                raise RuntimeError("out of memory")
            row.tokens.append(f"{row.name}0")
        self.rows += rows
        return self.retire()

    def step(self) -> list[FakeRow]:
        if self.permits is not None:
            assert self.permits.acquire(timeout=WAIT)
        self.passes.append([r.name for r in self.rows])
        if len(self.passes) == self.fail_pass:
            raise RuntimeError("out of memory")
        for row in self.rows:
            row.tokens.append(f"{row.name}{len(row.tokens)}")
        self.stepped.set()
        return self.retire()

    def retire(self) -> list[FakeRow]:
        done = [r for r in self.rows if len(r.tokens) >= r.length]
        self.finished += [r.name for r in done]
        self.rows = [r for r in self.rows if len(r.tokens) < r.length]
        return done

    def remove(self, rows: Sequence[FakeRow]) -> None:
        self.rows = [r for r in self.rows if r not in rows]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, WAIT)


async def after_one_pass(
    executor: ThreadPoolExecutor, rows: list[FakeRow], mergeable: bool = True
) -> tuple[FakeBatch, Engine[FakeRow], list[asyncio.Task[FakeRow]]]:
    """Submit ``rows``; return once their first pass ran (the next waits for ``go``)."""
    batch = FakeBatch(mergeable=mergeable)
    batch.permits = threading.Semaphore(1)
    engine = Engine(batch, executor, max_rows=lambda: 8)
    calls = [asyncio.ensure_future(engine.submit(r)) for r in rows]
    await wait_for(batch.stepped)
    return batch, engine, calls


async def go(batch: FakeBatch) -> None:
    """Let the batch run freely (after this loop turn's calls are in)."""
    await asyncio.sleep(0)
    assert batch.permits is not None
    batch.permits.release(1000)


async def test_concurrent_rows_share_passes_and_a_short_one_leaves_early(
    executor: ThreadPoolExecutor,
) -> None:
    batch = FakeBatch()
    engine = Engine(batch, executor, max_rows=lambda: 8)
    rows = [FakeRow("a", 2), FakeRow("b", 5), FakeRow("c", 3)]
    done = await asyncio.gather(*(engine.submit(r) for r in rows))
    assert [r.tokens for r in done] == [
        ["a0", "a1"],
        [f"b{i}" for i in range(5)],
        ["c0", "c1", "c2"],
    ]
    # one pass for all three, then "a" leaves; "c" leaves after the next; "b" goes on alone
    assert batch.passes == [["a", "b", "c"], ["b", "c"], ["b"], ["b"]]
    assert engine.passes == Counter({3: 1, 2: 1, 1: 2})
    await asyncio.get_running_loop().run_in_executor(executor, lambda: None)  # the last tick ended
    assert not engine.running
    assert not engine.waiting
    assert not engine.ticking


async def test_a_late_call_joins_the_running_batch(executor: ThreadPoolExecutor) -> None:
    batch, engine, (long,) = await after_one_pass(executor, [FakeRow("long", 6)])
    short = asyncio.ensure_future(engine.submit(FakeRow("short", 2)))
    await go(batch)
    await asyncio.gather(long, short)
    assert batch.finished == ["short", "long"]  # it did not wait for "long" to end
    assert ["long", "short"] in batch.passes


async def test_the_batch_never_exceeds_its_rows(executor: ThreadPoolExecutor) -> None:
    batch = FakeBatch()
    engine = Engine(batch, executor, max_rows=lambda: 2)
    rows = [FakeRow("a", 2), FakeRow("b", 4), FakeRow("c", 2)]
    await asyncio.gather(*(engine.submit(r) for r in rows))
    assert max(len(p) for p in batch.passes) == 2
    assert batch.passes[:2] == [["a", "b"], ["b", "c"]]  # "c" took the place "a" left


async def test_one_row_at_a_time_when_the_cache_cannot_merge(
    executor: ThreadPoolExecutor,
) -> None:
    batch, engine, (first,) = await after_one_pass(executor, [FakeRow("a", 3)], mergeable=False)
    later = [asyncio.ensure_future(engine.submit(FakeRow(n, 2))) for n in "bc"]
    await go(batch)
    await asyncio.gather(first, *later)
    assert batch.passes == [["a"], ["a"], ["b", "c"]]  # b and c waited, then went together


async def test_a_failing_prompt_fails_its_call_and_the_running_rows_go_on(
    executor: ThreadPoolExecutor,
) -> None:
    batch, engine, (running,) = await after_one_pass(executor, [FakeRow("ok", 4)])
    batch.fail_on = "bad"
    bad = asyncio.ensure_future(engine.submit(FakeRow("bad", 3)))
    await go(batch)
    results = await asyncio.gather(running, bad, return_exceptions=True)
    assert isinstance(results[1], RuntimeError)  # its prompt failed ...
    assert isinstance(results[0], FakeRow)  # ... and the row already decoding was not hurt
    assert results[0].tokens == ["ok0", "ok1", "ok2", "ok3"]
    assert not engine.running


async def test_a_failing_pass_fails_every_row_in_it_and_the_engine_goes_on(
    executor: ThreadPoolExecutor,
) -> None:
    batch = FakeBatch()
    batch.fail_pass = 2
    engine = Engine(batch, executor, max_rows=lambda: 8)
    results = await asyncio.gather(
        engine.submit(FakeRow("a", 5)), engine.submit(FakeRow("b", 5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert not batch.rows
    after = await engine.submit(FakeRow("next", 2))
    assert after.tokens == ["next0", "next1"]


async def test_a_cancelled_caller_leaves_the_batch(executor: ThreadPoolExecutor) -> None:
    rows = [FakeRow("gone", 50), FakeRow("kept", 4)]
    batch, engine, (gone, kept) = await after_one_pass(executor, rows)
    gone.cancel()
    await go(batch)
    assert (await kept).tokens == ["kept0", "kept1", "kept2", "kept3"]
    # dropped at the next tick (the pass already waiting may still carry it)
    assert sum(p.count("gone") for p in batch.passes) <= 2
    assert not engine.running


async def test_other_jobs_run_between_passes(executor: ThreadPoolExecutor) -> None:
    # pass 1 done; the tick of pass 2 is queued or waiting
    batch, _, (long,) = await after_one_pass(executor, [FakeRow("long", 40)])
    # a label-scoring job on the same thread runs at the next tick boundary, not after 39 passes
    job = asyncio.get_running_loop().run_in_executor(executor, lambda: len(batch.passes))
    await go(batch)
    assert await job in (1, 2)
    assert len((await long).tokens) == 40


def test_calls_from_two_event_loops_share_one_engine(executor: ThreadPoolExecutor) -> None:
    batch = FakeBatch()
    engine = Engine(batch, executor, max_rows=lambda: 8)
    answers: dict[str, list[str]] = {}

    def caller(name: str) -> None:
        answers[name] = asyncio.run(engine.submit(FakeRow(name, 3))).tokens

    threads = [threading.Thread(target=caller, args=(n,)) for n in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert answers == {"x": ["x0", "x1", "x2"], "y": ["y0", "y1", "y2"]}


def test_batch_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BATCH_ENV, raising=False)
    assert max_batch_from_env() == 8
    monkeypatch.setenv(BATCH_ENV, "1")
    assert max_batch_from_env() == 1
    for bad in ("0", "many", "-1", "2.5"):
        monkeypatch.setenv(BATCH_ENV, bad)
        with pytest.raises(ConfigError, match=f"{BATCH_ENV} must be a positive integer"):
            max_batch_from_env()


@pytest.mark.parametrize("running", [False, True])
async def test_a_bad_batch_size_fails_the_callers_and_a_good_one_works_again(
    executor: ThreadPoolExecutor, running: bool
) -> None:
    """The batch size is read at every tick: a bad one must reach every caller, not spin."""
    batch = FakeBatch()
    size: list[int | Exception] = [8]

    def max_rows() -> int:
        value = size[0]
        if isinstance(value, Exception):
            raise value
        return value

    engine = Engine(batch, executor, max_rows=max_rows)
    long = asyncio.ensure_future(engine.submit(FakeRow("long", 10_000))) if running else None
    if long is not None:
        await wait_for(batch.stepped)
    size[0] = ConfigError("LLM_AS_RNN_LOCAL_BATCH must be a positive integer")
    with pytest.raises(ConfigError, match="LOCAL_BATCH"):
        await asyncio.wait_for(engine.submit(FakeRow("a", 2)), WAIT)
    if long is not None:
        with pytest.raises(ConfigError):
            await asyncio.wait_for(long, WAIT)
    for _ in range(int(WAIT / 0.01)):  # the last tick ends just after it replied
        if not engine.ticking:
            break
        await asyncio.sleep(0.01)
    assert not engine.ticking  # nothing left to do: no tick spins
    size[0] = 8
    done = await asyncio.wait_for(engine.submit(FakeRow("b", 2)), WAIT)
    assert done.tokens == ["b0", "b1"]


class BrittleBatch(FakeBatch):
    """A batch whose ``remove`` raises the first ``breaks`` times (its state unknown)."""

    def __init__(self, breaks: int) -> None:
        super().__init__()
        self.breaks = breaks

    def remove(self, rows: Sequence[FakeRow]) -> None:
        if self.breaks > 0:
            self.breaks -= 1
            raise RuntimeError("cache half cut")
        super().remove(rows)


@pytest.mark.parametrize("breaks", [1, 2, 10])
async def test_a_batch_that_cannot_drop_rows_fails_every_call_and_the_engine_goes_on(
    executor: ThreadPoolExecutor, breaks: int
) -> None:
    batch = BrittleBatch(breaks)
    batch.fail_pass = 2  # the second pass raises; failing its rows, remove raises too
    engine = Engine(batch, executor, max_rows=lambda: 8)
    calls = [engine.submit(FakeRow(name, 5)) for name in "ab"]
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), WAIT)
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes
    batch.breaks = 0
    done = await asyncio.wait_for(engine.submit(FakeRow("c", 2)), WAIT)
    assert done.tokens == ["c0", "c1"]


async def test_a_call_on_a_shut_down_thread_fails_instead_of_waiting() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    engine = Engine(FakeBatch(), pool, max_rows=lambda: 8)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(engine.submit(FakeRow("a", 2)), WAIT)
    assert not engine.ticking


async def test_a_batch_size_below_one_still_runs_one_row(executor: ThreadPoolExecutor) -> None:
    engine = Engine(FakeBatch(), executor, max_rows=lambda: 0)
    done = await asyncio.wait_for(engine.submit(FakeRow("a", 2)), WAIT)
    assert done.tokens == ["a0", "a1"]
