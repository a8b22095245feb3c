"""Memory-first prompts: every role's call opens with the same memory block."""

from __future__ import annotations

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, build_graph, get_task, read_trace, run_sequence
from llm_as_rnn.core import delta, prompts
from llm_as_rnn.core import memory as mem
from llm_as_rnn.data import weather
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.backends import approx_tokens

TASK = get_task("weather")
MEMORY = TASK.initial_memory().replace("None yet.", "Rain follows falling pressure.", 1)
OBS = "wind 4 m/s, 0.0 mm"


def every_role() -> dict[str, list[BaseMessage]]:
    notes = delta.render_notes(delta.notes_of(MEMORY, TASK.sections), TASK.sections)
    return {
        "predict": prompts.predict_messages(TASK, MEMORY, OBS, 3),
        "critique": prompts.critique_messages(TASK, MEMORY, OBS, "dry", "light rain", "WRONG"),
        "judge": prompts.judge_messages(TASK, MEMORY, OBS, "dry"),
        "rewrite": prompts.rewrite_messages(TASK, MEMORY, OBS, "dry", "Wrong.", 256, 3),
        "fused": prompts.fused_messages(TASK, MEMORY, OBS, "dry", "light rain", 256, 3),
        "compress": prompts.compress_messages(TASK, MEMORY, 300, 256),
        "delta": prompts.delta_messages(TASK, notes, OBS, "dry", "Wrong.", 256, 3),
    }


def text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


@pytest.mark.parametrize("role", list(every_role()))
def test_every_role_opens_with_the_memory_once(role: str) -> None:
    before = every_role()[role]
    after = prompts.memory_first(before)
    memory = MEMORY
    if role == "delta":  # the notes with their ids
        memory = str(before[-1].content).split("Current notes:\n\n")[1].split("\n\nStep 3:")[0]
    head = f"{prompts.MEMORY_FIRST}\n<memory>\n{prompts.defuse(memory)}\n</memory>"
    assert isinstance(after[0], SystemMessage)
    assert str(after[0].content).startswith(head)
    assert text(after).count(prompts.defuse(memory)) == 1  # moved, not copied
    assert len(after) == len(before)
    # everything else is kept, in order: the role's own instructions follow the memory
    assert str(before[0].content) in str(after[0].content) or "(at the top)" in text(after)
    assert prompts.memory_first(after) == after  # already in order: unchanged


def test_the_calls_of_a_step_share_the_memory_prefix() -> None:
    heads = []
    for role, messages in every_role().items():
        if role != "delta":  # numbered notes are another text of the same memory
            heads.append(str(prompts.memory_first(messages)[0].content))
    shared = min(len(h) for h in heads)
    for i in range(shared):
        if len({h[i] for h in heads}) > 1:
            shared = i
            break
    assert shared >= len(prompts.MEMORY_FIRST) + len(MEMORY)


def test_a_prompt_without_memory_is_unchanged() -> None:
    plain = [SystemMessage("You are terse."), HumanMessage("Say hi.")]
    assert prompts.memory_first(plain) is plain
    assert prompts.ordered(every_role()["predict"], "role-first") == every_role()["predict"]


@pytest.mark.parametrize("rewrite_mode", ["full", "delta"])
async def test_a_memory_first_run_learns_like_a_role_first_run(rewrite_mode: str) -> None:
    """The fake model finds the memory at the top; the memory still grows under budget."""
    traces = {}
    for order in ("role-first", "memory-first"):
        store = InMemoryStore()
        graph = build_graph(InMemorySaver(), store)
        ctx = Context(model="fake:3", budget=1024, prompt_order=order, rewrite_mode=rewrite_mode)
        await run_sequence(graph, weather.window(10, 4), thread_id=order, context=ctx)
        traces[order] = await read_trace(store, order)
    for order, trace in traces.items():
        assert [r["step"] for r in trace] == [1, 2, 3, 4], order
        for record in trace:
            memory = record["memory_after"]
            assert mem.invariant_violations(memory, TASK.sections, 1024, approx_tokens) == []
        assert trace[-1]["memory_after"] != trace[0]["memory_before"], order  # it learned
        assert not any(r["rewrite_rejected"] for r in trace), order
    # the rewriter found the memory at the top: every step's lesson is in it
    lessons = [r["memory_after"].count("When ") for r in traces["memory-first"]]
    assert lessons == [1, 2, 3, 4]


async def test_resuming_with_another_prompt_order_is_refused() -> None:
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    ctx = Context(model="fake", budget=160)
    await run_sequence(graph, weather.window(0, 2), thread_id="t", context=ctx)
    other = ctx.model_copy(update={"prompt_order": "memory-first"})
    with pytest.raises(ConfigError, match="prompt_order"):
        await run_sequence(graph, weather.window(0, 3), thread_id="t", context=other)
