"""The methods' prompts on a tiny sequence: FHC grows, rnn stays bounded."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import build_graph, run_sequence
from llm_as_rnn.data import weather
from llm_as_rnn.evals import baselines
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.tasks import get_task
from llm_as_rnn.testing import rule_based
from tests.conftest import make_context, make_model

TASK = get_task("weather")
SEQ = weather.window(100, 30)


def history(n: int) -> list[dict[str, Any]]:
    return [
        {
            "step": i + 1,
            "input_text": TASK.render_input(o["input"]),
            "target": o["target"],
            "prediction": "sun",
        }
        for i, o in enumerate(SEQ[:n])
    ]


def tokens(messages: list[BaseMessage]) -> int:
    return sum(approx_tokens(str(m.content)) for m in messages)


def test_zero_shot_holds_only_the_current_input() -> None:
    text = TASK.render_input(SEQ[5]["input"])
    prompt = "\n".join(str(m.content) for m in baselines.zero_shot_messages(TASK, text))
    assert text in prompt
    assert TASK.render_input(SEQ[4]["input"]) not in prompt


def test_fhc_grows_with_history_and_shows_truths() -> None:
    text = TASK.render_input(SEQ[20]["input"])
    sizes = []
    for n in (0, 5, 20):
        messages, dropped = baselines.fhc_messages(TASK, history(n), text, approx_tokens, 100_000)
        assert dropped == 0
        sizes.append(tokens(messages))
    assert sizes[0] < sizes[1] < sizes[2]
    prompt = str(
        baselines.fhc_messages(TASK, history(3), text, approx_tokens, 100_000)[0][-1].content
    )
    assert f"True outcome: {SEQ[0]['target']}" in prompt


def test_fhc_drops_oldest_to_fit_and_counts() -> None:
    text = TASK.render_input(SEQ[20]["input"])
    messages, dropped = baselines.fhc_messages(TASK, history(20), text, approx_tokens, 900)
    assert dropped > 0
    assert tokens(messages) <= 900
    prompt = str(messages[-1].content)
    assert "Step 20:" in prompt  # newest kept
    assert "Step 1:\n" not in prompt  # oldest dropped


def test_memprompt_retrieves_the_closest_entries() -> None:
    past = [
        {"step": 1, "input_text": "cold snow wind", "target": "snow", "prediction": "rain"},
        {"step": 2, "input_text": "hot sun dry", "target": "sun", "prediction": "sun"},
        {"step": 3, "input_text": "wet rain cloud", "target": "rain", "prediction": "fog"},
    ]
    chosen = baselines.closest(past, "heavy rain and wet cloud", k=1)
    assert chosen[0]["step"] == 3
    prompt = str(baselines.memprompt_messages(TASK, past, "wet rain cloud", k=2)[-1].content)
    assert "you predicted fog; the truth was rain" in prompt
    assert baselines.cosine(baselines.words("a b"), baselines.words("a b")) == pytest.approx(1.0)


async def test_rnn_prompt_stays_bounded_while_fhc_grows() -> None:
    prompts: list[int] = []
    base = rule_based(0)

    def measure(messages: list[BaseMessage]) -> str:
        if "Reply with exactly one line" in str(messages[-1].content):
            prompts.append(tokens(messages))
        return base(messages)

    graph = build_graph(InMemorySaver(), InMemoryStore())
    ctx = make_context(make_model(measure), budget=150)
    await run_sequence(graph, SEQ, thread_id="b", context=ctx)
    assert len(prompts) == 30
    assert max(prompts[5:]) < 1.3 * min(prompts[5:])  # bounded by the memory budget
    fhc = [
        tokens(baselines.fhc_messages(TASK, history(n), "x", approx_tokens, 10**6)[0])
        for n in (5, 29)
    ]
    assert fhc[1] > 3.5 * fhc[0]
