"""Gathering waiting calls into batches, and the pure parts of batched decoding."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from llm_as_rnn.runtime.batching import BATCH_ENV, Batcher, max_batch_from_env
from llm_as_rnn.runtime.decode import common_prefix, top_p_filter


def recorder(batches: list[list[str]]) -> Batcher[str, str]:
    async def run(payloads: list[str]) -> list[str]:
        batches.append(list(payloads))
        await asyncio.sleep(0.01)  # the model is busy: later calls wait
        return [p.upper() for p in payloads]

    return Batcher(run, max_batch=lambda: 3)


async def test_waiting_calls_with_equal_keys_run_together() -> None:
    batches: list[list[str]] = []
    batcher = recorder(batches)
    calls = [batcher.submit("greedy" if i % 2 else "sampled", f"c{i}") for i in range(8)]
    results = await asyncio.gather(*calls)
    assert results == [f"C{i}" for i in range(8)]  # each caller gets its own answer
    # the oldest waiting call leads; its equals join, up to three
    assert batches == [["c0", "c2", "c4"], ["c1", "c3", "c5"], ["c6"], ["c7"]]
    assert batcher.sizes == Counter({3: 2, 1: 2})  # batches counted by size


async def test_a_lone_call_runs_at_once_and_late_calls_form_the_next_batch() -> None:
    batches: list[list[str]] = []
    batcher = recorder(batches)
    first = asyncio.ensure_future(batcher.submit("k", "a"))
    await asyncio.sleep(0.002)  # "a" is running alone now
    rest = [batcher.submit("k", x) for x in "bcd"]
    assert await asyncio.gather(first, *rest) == ["A", "B", "C", "D"]
    assert batches == [["a"], ["b", "c", "d"]]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    async def run(payloads: list[str]) -> list[str]:
        await asyncio.sleep(0.01)
        if "bad" in payloads:
            raise RuntimeError("out of memory")
        return payloads

    batcher: Batcher[str, str] = Batcher(run, max_batch=lambda: 8)
    bad = batcher.submit("x", "bad")
    good = batcher.submit("y", "good")
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1] == "good"


async def test_a_cancelled_caller_is_dropped_from_its_batch() -> None:
    batches: list[list[str]] = []
    batcher = recorder(batches)
    busy = asyncio.ensure_future(batcher.submit("k", "busy"))
    await asyncio.sleep(0.002)
    gone = asyncio.ensure_future(batcher.submit("k", "gone"))
    kept = asyncio.ensure_future(batcher.submit("k", "kept"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == "KEPT"
    await busy
    assert batches == [["busy"], ["kept"]]


def test_batch_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BATCH_ENV, raising=False)
    assert max_batch_from_env() == 8
    monkeypatch.setenv(BATCH_ENV, "1")
    assert max_batch_from_env() == 1
    monkeypatch.setenv(BATCH_ENV, "0")
    assert max_batch_from_env() == 1
    monkeypatch.setenv(BATCH_ENV, "many")
    assert max_batch_from_env() == 8


def test_common_prefix() -> None:
    assert common_prefix([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == 2
    assert common_prefix([[1, 2], [1, 2]]) == 2
    assert common_prefix([[5], [6]]) == 0
    assert common_prefix([[1, 2, 3]]) == 3
    assert common_prefix([]) == 0


def test_top_p_keeps_the_nucleus_and_renormalises() -> None:
    torch = pytest.importorskip("torch", reason="decoding needs torch (the hf extra)")
    probs = torch.tensor([0.05, 0.5, 0.3, 0.15])
    kept = top_p_filter(probs, 0.7)  # 0.5 then 0.3 reach 0.8 >= 0.7: two tokens kept
    assert torch.allclose(kept, torch.tensor([0.0, 0.5 / 0.8, 0.3 / 0.8, 0.0]))
    assert torch.equal(top_p_filter(probs, 1.0), probs)
    only = top_p_filter(probs, 0.1)  # the top token alone
    assert torch.allclose(only, torch.tensor([0.0, 1.0, 0.0, 0.0]))
