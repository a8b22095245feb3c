"""The real embedded model (SmolLM2-135M) through the whole graph."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, build_graph, get_task, read_trace, run_sequence
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core import prompts
from llm_as_rnn.data import weather
from llm_as_rnn.runtime.backends import LabelQuery
from llm_as_rnn.runtime.local import LocalHFBackend
from llm_as_rnn.runtime.resolve import build_backend
from llm_as_rnn.runtime.spec import Endpoint, parse_spec

pytestmark = pytest.mark.integration


async def test_two_weather_steps_on_the_embedded_model() -> None:
    task = get_task("weather")
    # Seeded draws are deterministic per prompt, so this run is reproducible.
    ctx = Context(
        model="embedded",
        budget=96,
        seed=2,
        # The rewriter's limit follows the budget: a memory capped mid-way is rejected.
        sampling={r: {"max_new_tokens": 96} for r in ("predictor", "critic")},  # type: ignore[misc]
    )
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    result = await run_sequence(graph, weather.window(0, 2), thread_id="e", context=ctx)
    count = build_backend(ctx.model, ctx.endpoint()).count_tokens
    assert result.steps_done == 2
    trace = await read_trace(store, "e")
    assert [r["step"] for r in trace] == [1, 2]
    for record in trace:
        # the tiny model's rewrite is accepted (it may copy the memory as it was),
        # or its rejection is recorded with a reason
        assert record["usage"]["rewriter"]["calls"] >= 1
        assert record["enforcement"] != "kept" or record["rejection_reason"], record
        memory = record["memory_after"]
        assert mem.invariant_violations(memory, task.sections, 96, count) == []
        assert record["memory_tokens"] == count(memory) <= 96
        assert record["usage"]["predictor"]["prompt_tokens"] > 50  # the real tokenizer counted


async def test_label_scores_equal_a_direct_forward_pass() -> None:
    import torch

    backend = build_backend(parse_spec("embedded"), Endpoint())
    assert isinstance(backend, LocalHFBackend)
    task = get_task("weather")
    messages = prompts.predict_messages(task, task.initial_memory(), "wind 4 m/s, 0.0 mm", 1)
    continuations = [f" {label}" for label in task.labels]  # " light rain": two tokens
    scores = await backend.label_logprobs(LabelQuery(messages, "Answer:", continuations))
    assert scores is not None
    model = backend.model
    prompt = backend.chat_prompt(messages) + "Answer:"
    prompt_ids = backend.tokenizer(prompt, add_special_tokens=False).input_ids
    lengths = []
    for continuation, score in zip(continuations, scores, strict=True):
        full = backend.tokenizer(prompt + continuation, add_special_tokens=False).input_ids
        assert full[: len(prompt_ids)] == prompt_ids
        ids = full[len(prompt_ids) :]
        lengths.append(len(ids))
        with torch.no_grad():  # the whole text at once, no cache, no batch
            logp = torch.log_softmax(model(torch.tensor([full])).logits.float(), -1)[0]
        direct = sum(float(logp[len(prompt_ids) + j - 1, t]) for j, t in enumerate(ids))
        assert score == pytest.approx(direct, abs=1e-4)
    assert max(lengths) > 1  # a multi-token label was scored


async def test_batched_answers_equal_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent calls decode in one running batch, with the answers each would get alone."""
    import asyncio
    from collections import Counter

    from llm_as_rnn import Sampling
    from llm_as_rnn.runtime.decode import DecodeSettings, decode
    from llm_as_rnn.runtime.engine import BATCH_ENV
    from llm_as_rnn.runtime.local import end_tokens
    from llm_as_rnn.runtime.spec import CallPolicy

    backend = build_backend(parse_spec("embedded"), Endpoint())
    assert isinstance(backend, LocalHFBackend)
    task = get_task("weather")
    chats = [
        prompts.predict_messages(task, task.initial_memory(), task.render_input(o["input"]), 1)
        for o in weather.window(40, 4)
    ]
    passes = backend.engine.passes
    alone_greedy: list[str] = []
    for sampling, policy in [
        (Sampling(temperature=0.0, max_new_tokens=12), CallPolicy()),
        (Sampling(temperature=0.7, top_p=0.9, max_new_tokens=12), CallPolicy(seed=5)),
    ]:
        monkeypatch.setenv(BATCH_ENV, "1")
        before = Counter(passes)
        alone = [await backend.generate(c, sampling, policy) for c in chats]
        assert set(passes - before) == {1}  # one row per pass
        alone_greedy = alone_greedy or [g.text for g in alone]
        monkeypatch.setenv(BATCH_ENV, "8")
        before = Counter(passes)
        together = await asyncio.gather(*(backend.generate(c, sampling, policy) for c in chats))
        assert (passes - before)[4] >= 1  # the four calls shared passes
        assert [g.text for g in together] == [g.text for g in alone]
        assert [g.completion_tokens for g in together] == [g.completion_tokens for g in alone]
        assert all(g.completion_tokens <= 12 for g in together)
    # each row has its own cap and temperature; rows join a running batch mid-way
    mixed = [
        DecodeSettings(max_new_tokens=12),
        DecodeSettings(max_new_tokens=5, temperature=0.7, top_p=0.9),
        DecodeSettings(max_new_tokens=9, temperature=0.3, top_p=0.5),
    ]
    ids = [
        backend.tokenizer(backend.chat_prompt(c), add_special_tokens=False).input_ids
        for c in chats[:3]
    ]
    model, ends, seeds = backend.model, end_tokens(backend.model, backend.tokenizer), [None, 5, 1]
    rows = decode(model, ids, mixed, end_tokens=ends, pad=2, seeds=seeds)
    greedy = Sampling(temperature=0.0, max_new_tokens=12)
    first = asyncio.ensure_future(backend.generate(chats[3], greedy, CallPolicy()))
    await asyncio.sleep(1.0)  # most likely decoding by now: the later calls join it mid-way
    late = await asyncio.gather(*(backend.generate(c, greedy, CallPolicy()) for c in chats[:3]))
    assert (await first).text == alone_greedy[3]
    assert [g.text for g in late] == alone_greedy[:3]
    for i in range(3):
        (row,) = decode(model, [ids[i]], [mixed[i]], end_tokens=ends, pad=2, seeds=[seeds[i]])
        assert rows[i].tokens == row.tokens
        assert len(row.tokens) <= mixed[i].max_new_tokens
