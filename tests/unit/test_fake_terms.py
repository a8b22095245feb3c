"""The fake models speak the task's own terms, for any task, deterministically."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, RegressionTask, read_trace, run_sequence
from llm_as_rnn.core.graph import build_graph
from tests.conftest import task_class

HELPDESK = task_class(
    "Helpdesk",
    name="helpdesk",
    description="Route each support ticket to the team that will handle it.",
    labels=("billing", "outage", "account"),
    sections=("SIGNALS", "MISTAKES", "ROUTING RULES"),
)()
LOAD = task_class(
    "Load",
    RegressionTask,
    name="load",
    description="Forecast tomorrow's server load, as a fraction of capacity.",
    unit="fraction",
    sections=("SIGNALS", "MISTAKES"),
)()
TICKETS = [
    {"input": {"subject": s, "channel": c}, "target": t}
    for s, c, t in [
        ("charged twice", "email", "billing"),
        ("site down", "phone", "outage"),
        ("cannot log in", "chat", "account"),
        ("refund please", "email", "billing"),
        ("500 errors", "chat", "outage"),
    ]
]
LOADS = [
    {"input": {"queue": q, "errors": e}, "target": q / 100} for q, e in [(20, 1), (35, 0), (50, 4)]
]
WEATHER = re.compile(r"weather|rain|sun|days?\b|wind|humid|temperature|fog|snow", re.I)
MODES = [
    {"feedback": "supervised"},
    {"feedback": "judge"},
    {"feedback": "supervised", "step_mode": "fused"},
    {"feedback": "judge", "step_mode": "fused", "rewrite_mode": "delta"},
    {"feedback": "supervised", "rewrite_mode": "delta"},
]


async def trace_of(task: Any, data: list[Any], **fields: Any) -> list[Any]:
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    ctx = Context(task=task, model="fake:2", **fields)
    await run_sequence(graph, data, thread_id="t", context=ctx)
    return await read_trace(store, "t")


def terms(task: Any, data: list[Any]) -> set[str]:
    """The task's own words: labels, input fields and memory sections."""
    fields = {name for row in data for name in row["input"]}
    return {*getattr(task, "labels", ()), *fields, *task.sections}


@pytest.mark.parametrize("fields", MODES, ids=lambda f: "-".join(f.values()))
@pytest.mark.parametrize(
    ("task", "data"), [(HELPDESK, TICKETS), (LOAD, LOADS)], ids=["labels", "numbers"]
)
async def test_fake_feedback_and_memory_speak_the_tasks_terms(
    task: Any, data: list[Any], fields: dict[str, str]
) -> None:
    trace = await trace_of(task, data, **fields)
    words = terms(task, data)
    for record in trace:
        lesson = record["feedback"]["text"]
        assert not WEATHER.search(lesson), lesson
        assert not WEATHER.search(record["memory_after"]), record["memory_after"]
        # the critique's own part (beyond the verdict code states) names the task's terms
        own = lesson.partition("Lesson: ")[2] or lesson.partition("Judge verdict: ")[2]
        assert any(word in own for word in words), lesson
    assert any(r["memory_after"] != r["memory_before"] for r in trace)  # it learned
    again = await trace_of(task, data, **fields)
    assert [r["feedback"]["text"] for r in again] == [r["feedback"]["text"] for r in trace]
