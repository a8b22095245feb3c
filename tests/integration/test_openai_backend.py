"""The openai: backend against a real `transformers serve` on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, build_graph, get_task, read_trace
from llm_as_rnn.core import memory as mem
from llm_as_rnn.data import weather
from llm_as_rnn.runtime.resolve import build_backend

pytestmark = pytest.mark.integration


async def test_one_full_step_through_transformers_serve(served_url: str, served_dir: Path) -> None:
    task = get_task("weather")
    ctx = Context(
        model=f"openai:{served_dir}",
        base_url=served_url,
        tokenizer=str(served_dir),
        budget=128,
        # The rewriter's limit follows the budget: a memory capped mid-way is rejected.
        sampling={r: {"max_new_tokens": 48} for r in ("predictor", "critic")},  # type: ignore[misc]
    )
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    out = await graph.ainvoke(
        {"observations": weather.window(10, 1)},
        {"configurable": {"thread_id": "o"}},
        context=ctx,
    )
    assert out["step"] == 1
    record = (await read_trace(store, "o"))[0]
    usage = record["usage"]
    assert all(usage[role]["calls"] >= 1 for role in ("predictor", "critic", "rewriter"))
    # usage comes from the server's own counts
    assert usage["predictor"]["prompt_tokens"] > 50
    assert usage["predictor"]["completion_tokens"] >= 1
    count = build_backend(ctx.model, ctx.endpoint()).count_tokens
    assert mem.invariant_violations(out["memory"], task.sections, 128, count) == []
    assert record["prediction"]["text"]  # the server answered
