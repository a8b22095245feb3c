"""The decoder: rows joining and leaving a running batch get the answers they would alone.

A tiny randomly initialised Llama (``tests/conftest.py``, nothing downloaded) stands in
for a real model: what is tested is the cache surgery (merging newcomers'
caches, cutting out finished rows, trimming padding), not language.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm_as_rnn.runtime.decode import (
    DecodeSettings,
    Row,
    RunningBatch,
    decode,
    top_p_filter,
)
from llm_as_rnn.runtime.prefixes import common_prefix
from tests.conftest import tiny_llama

PAD = 0


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_llama()


PROMPTS = [
    [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    [5, 6, 7, 8, 20, 21],
    [30, 31, 32, 33, 34, 35, 36, 37, 38],
    [5, 6, 7, 8, 9, 10, 40],
]
SETTINGS = [
    DecodeSettings(max_new_tokens=14),
    DecodeSettings(max_new_tokens=4, temperature=0.8, top_p=0.9),
    DecodeSettings(max_new_tokens=9, temperature=0.5),
    DecodeSettings(max_new_tokens=6),
]
SEEDS = [None, 11, 12, None]


def alone(model: Any, i: int) -> list[int]:
    (row,) = decode(model, [PROMPTS[i]], [SETTINGS[i]], end_tokens=set(), pad=PAD, seeds=[SEEDS[i]])
    return row.tokens


def rows() -> list[Row]:
    return [Row(list(p), s, seed) for p, s, seed in zip(PROMPTS, SETTINGS, SEEDS, strict=True)]


def test_rows_admitted_together_equal_each_alone(model: Any) -> None:
    batch = RunningBatch(model, set(), PAD)
    together = rows()
    batch.admit(together)
    batch.run_to_end()
    for i, row in enumerate(together):
        assert row.result().tokens == alone(model, i)
        assert len(row.result().tokens) == SETTINGS[i].max_new_tokens
        assert row.result().cut_off


def test_rows_joining_a_running_batch_equal_each_alone(model: Any) -> None:
    batch = RunningBatch(model, set(), PAD)
    first, second, third, fourth = rows()
    finished: list[Row] = batch.admit([first])
    for _ in range(3):
        finished += batch.step()
    finished += batch.admit([second, third])  # a shorter and a different prompt join mid-way
    finished += batch.step()
    finished += batch.admit([fourth])
    while batch.rows:
        finished += batch.step()
    assert sorted(id(r) for r in finished) == sorted(id(r) for r in (first, second, third, fourth))
    for i, row in enumerate((first, second, third, fourth)):
        assert row.result().tokens == alone(model, i), f"row {i}"


def test_finished_rows_leave_and_padding_nobody_needs_is_trimmed(model: Any) -> None:
    batch = RunningBatch(model, set(), PAD)
    long_prompt = Row(list(range(10, 40)), DecodeSettings(max_new_tokens=2))
    short_prompt = Row([50, 51, 52], DecodeSettings(max_new_tokens=6))
    batch.admit([long_prompt, short_prompt])
    assert batch.mask.shape == (2, 30)
    batch.step()
    assert batch.rows == [short_prompt]  # the long prompt's row reached its cap and left
    # the cache keeps only the short row's tokens: 3 prompt + 1 fed so far
    assert batch.mask.shape == (1, 4)
    assert int(batch.mask.sum()) == 4
    assert batch.cache.layers[0].keys.shape[2] == 4
    batch.run_to_end()
    assert len(short_prompt.result().tokens) == 6


def test_an_end_token_ends_a_row_and_is_left_out(model: Any) -> None:
    free = alone(model, 0)
    end = free[3]  # the token it would write fourth
    row = Row(list(PROMPTS[0]), SETTINGS[0])
    batch = RunningBatch(model, {end}, PAD)
    batch.admit([row])
    batch.run_to_end()
    cut = free.index(end)
    assert row.result().tokens == free[:cut]
    assert not row.result().cut_off


def test_a_row_with_no_room_is_done_at_once(model: Any) -> None:
    batch = RunningBatch(model, set(), PAD)
    empty = Row([1, 2, 3], DecodeSettings(max_new_tokens=0))
    assert batch.admit([empty]) == [empty]
    assert not batch.rows
    assert empty.result().tokens == []


def test_removed_rows_stop_decoding(model: Any) -> None:
    batch = RunningBatch(model, set(), PAD)
    a, b = Row([1, 2, 3], DecodeSettings(max_new_tokens=20)), Row([4, 5], DecodeSettings(5))
    batch.admit([a, b])
    batch.remove([a])
    assert batch.rows == [b]
    batch.run_to_end()
    assert len(a.tokens) == 1
    assert len(b.tokens) == 5


def test_common_prefix() -> None:
    assert common_prefix([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == 2
    assert common_prefix([[1, 2], [1, 2]]) == 2
    assert common_prefix([[5], [6]]) == 0
    assert common_prefix([[1, 2, 3]]) == 3
    assert common_prefix([]) == 0


def test_top_p_keeps_the_nucleus_and_renormalises() -> None:
    probs = torch.tensor([0.05, 0.5, 0.3, 0.15])
    kept = top_p_filter(probs, 0.7)  # 0.5 then 0.3 reach 0.8 >= 0.7: two tokens kept
    assert torch.allclose(kept, torch.tensor([0.0, 0.5 / 0.8, 0.3 / 0.8, 0.0]))
    assert torch.equal(top_p_filter(probs, 1.0), probs)
    only = top_p_filter(probs, 0.1)  # the top token alone
    assert torch.allclose(only, torch.tensor([0.0, 1.0, 0.0, 0.0]))


def whole_sort_top_p(probs: Any, top_p: float) -> Any:
    """The nucleus by sorting the whole vocabulary (what ``top_p_filter`` must equal)."""
    ordered, order = torch.sort(probs, descending=True)
    before = torch.cumsum(ordered, dim=-1) - ordered
    ordered = torch.where(before < top_p, ordered, torch.zeros_like(ordered))
    kept = torch.zeros_like(probs).scatter(-1, order, ordered)
    return kept / kept.sum()


@pytest.mark.parametrize("vocab", [5, 64, 65, 49152])
@pytest.mark.parametrize("temperature", [0.05, 0.7, 1.0, 3.0])
@pytest.mark.parametrize("top_p", [0.1, 0.9, 0.999])
def test_top_p_equals_the_whole_sort(vocab: int, temperature: float, top_p: float) -> None:
    gen = torch.Generator().manual_seed(vocab + int(temperature * 100))
    probs = torch.softmax(torch.randn(vocab, generator=gen) * 3 / temperature, -1)
    kept = top_p_filter(probs, top_p)
    assert torch.equal(kept, whole_sort_top_p(probs, top_p))
    assert float(kept.sum()) == pytest.approx(1.0)
