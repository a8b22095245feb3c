"""Choice mode on a local model: labels scored in chunks, exactly, in bounded memory.

A tiny randomly initialised Llama (``tests/conftest.py``) and a one-token-per-
character tokenizer stand in for a real model: what is tested is that chunks
change no score, that no forward pass holds more rows than a chunk, and that
decoding passes of other calls run between chunks.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime import scoring
from llm_as_rnn.runtime.backends import LabelQuery
from llm_as_rnn.runtime.decode import DecodeSettings, Row
from llm_as_rnn.runtime.local import LocalHFBackend
from llm_as_rnn.runtime.scoring import LABEL_CHUNK_ENV, label_chunk
from llm_as_rnn.testing import FunctionChatModel
from tests.conftest import tiny_llama

CHUNK = 4
MESSAGES = [SystemMessage("You forecast."), HumanMessage("Tomorrow: rain, snow or sun?")]
WORDS = ["a", "bb", "ccc", "d", "eeee", "ff", "g", "hhhhh", "ii", "j", "kkk", "l", "mm"]


class CharTokenizer:
    """One token per character (ids 5..94), so labels of different lengths are easy to make."""

    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> SimpleNamespace:
        return SimpleNamespace(input_ids=self.encode(text))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [5 + ord(c) % 90 for c in text]

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


@pytest.fixture(scope="module")
def backend() -> LocalHFBackend:
    chat = FunctionChatModel(respond=lambda _: "unused")
    return LocalHFBackend(chat, "tiny", CharTokenizer(), tiny_llama())


def query(count: int) -> LabelQuery:
    return LabelQuery(MESSAGES, "Answer:", [f" {WORDS[i % len(WORDS)]}{i}" for i in range(count)])


def direct(backend: LocalHFBackend, q: LabelQuery) -> list[float]:
    """Score each label alone: prompt and label in one forward pass, no cache, no batch."""
    import torch

    prompt = backend.chat_prompt(q.messages) + q.prefix
    start = len(backend.tokenizer.encode(prompt))
    scores = []
    for continuation in q.continuations:
        full = backend.tokenizer.encode(prompt + continuation)
        with torch.no_grad():
            logp = torch.log_softmax(backend.model(torch.tensor([full])).logits.float(), -1)[0]
        scores.append(sum(float(logp[j - 1, full[j]]) for j in range(start, len(full))))
    return scores


def forward_rows(model: Any) -> tuple[list[int], Any]:
    """Record the rows of every forward pass: the input's and the key/value cache's."""
    rows: list[int] = []

    def hook(_: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows.append(int(ids.shape[0]))
        for name in ("cache", "past_key_values"):
            layers = getattr(kwargs.get(name), "layers", None) or []
            rows.extend(int(layer.keys.shape[0]) for layer in layers if layer.keys is not None)

    return rows, model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("shared", [True, False], ids=["shared cache", "copied cache"])
@pytest.mark.parametrize("count", [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 1])
async def test_chunked_scores_equal_unchunked_and_direct_scores(
    backend: LocalHFBackend, count: int, shared: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not shared:  # as for a cache that cannot be shared (sliding window, recurrent state)
        monkeypatch.setattr(scoring, "plain_cache", lambda _: False)
    q = query(count)
    assert len({len(c) for c in q.continuations}) > 1 or count == 1  # labels of several lengths
    monkeypatch.setenv(LABEL_CHUNK_ENV, str(CHUNK))
    chunked = await backend.label_logprobs(q)
    monkeypatch.setenv(LABEL_CHUNK_ENV, "1000")
    unchunked = await backend.label_logprobs(q)
    assert chunked == pytest.approx(unchunked, abs=1e-5)
    assert chunked == pytest.approx(direct(backend, q), abs=1e-5)


@pytest.mark.parametrize("count", [CHUNK - 1, CHUNK, 3 * CHUNK + 1])
async def test_no_forward_pass_holds_more_rows_than_a_chunk(
    backend: LocalHFBackend, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LABEL_CHUNK_ENV, str(CHUNK))
    rows, handle = forward_rows(backend.model)
    try:
        scores = await backend.label_logprobs(query(count))
    finally:
        handle.remove()
    assert len(scores) == count
    assert rows
    assert max(rows) <= min(count, CHUNK), rows


async def test_decoding_passes_run_between_chunks(
    backend: LocalHFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring many labels never holds up a running generation for all of its chunks."""
    import llm_as_rnn.runtime.local as local

    monkeypatch.setenv(LABEL_CHUNK_ENV, "2")
    events: list[str] = []
    batch = backend.engine.batch
    step, score = batch.step, local.score_chunk
    monkeypatch.setattr(batch, "end_tokens", set())  # the generation runs to its cap
    monkeypatch.setattr(batch, "step", lambda: events.append("pass") or step())

    def scored(*args: Any) -> list[float]:
        events.append("chunk")
        return score(*args)

    monkeypatch.setattr(local, "score_chunk", scored)
    generation = asyncio.ensure_future(
        backend.engine.submit(Row([5, 6, 7, 8], DecodeSettings(max_new_tokens=300)))
    )
    await asyncio.sleep(0)  # the generation starts first
    scores = await backend.label_logprobs(query(8))
    await generation
    assert len(scores) == 8
    first, last = events.index("chunk"), len(events) - 1 - events[::-1].index("chunk")
    assert events.count("chunk") == 4
    assert "pass" in events[first:last]


def test_chunk_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LABEL_CHUNK_ENV, "3")
    assert label_chunk() == 3
    monkeypatch.setenv(LABEL_CHUNK_ENV, "")
    assert label_chunk() == 8
    for unusable in ("0", "-2", "many"):
        monkeypatch.setenv(LABEL_CHUNK_ENV, unusable)
        with pytest.raises(ConfigError, match=f"{LABEL_CHUNK_ENV} must be a positive integer"):
            label_chunk()
