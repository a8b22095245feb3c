"""A frozen memory (``Context.freeze``, ``run --freeze``): one predictor call a step, no update."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from llm_as_rnn import read_trace, run_sequence
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.state import StepRecord
from llm_as_rnn.data import weather
from llm_as_rnn.frontends.terminal import run_summary
from llm_as_rnn.tasks import get_task
from llm_as_rnn.testing import rule_based
from tests.conftest import make_context, make_model

TASK = get_task("weather")
SEQ = weather.window(0, 6)
LEARNED = TASK.initial_memory().replace(
    "## Patterns\n", "## Patterns\n- After a wet day, rain tends to follow.\n", 1
)
"""A memory another thread learned (the task's sections, one note more)."""


def counting() -> tuple[Any, list[str]]:
    """A rule-based model that records the role of each prompt it answers."""
    base, seen = rule_based(0), []

    def respond(messages: list[BaseMessage]) -> str:
        seen.append(str(messages[0].content)[:60])
        return base(messages)

    return make_model(respond), seen


async def frozen_trace(model: Any = None, **fields: Any) -> tuple[list[StepRecord], list[str]]:
    counted, seen = counting()
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    ctx = make_context(model or counted, initial_memory=LEARNED, freeze=True, **fields)
    await run_sequence(graph, SEQ, thread_id="f", context=ctx)
    return await read_trace(store, "f"), seen


def calls(record: StepRecord) -> dict[str, int]:
    return {role: u["calls"] for role, u in record["usage"].items()}


async def test_a_frozen_step_calls_the_predictor_once_and_keeps_the_memory() -> None:
    records, seen = await frozen_trace()
    assert len(records) == len(SEQ)
    assert len(seen) == len(SEQ)  # the model answered the predictor only
    for record in records:
        assert sum(calls(record).values()) == 1
        assert calls(record)["predictor"] == 1
        assert record["memory_before"] == record["memory_after"] == LEARNED
        assert record["enforcement"] == "frozen"
        assert not record["rewrite_rejected"]
        assert record["correct"] is not None  # scored against the truth, by code
        assert record["feedback"]["text"].startswith("Predicted ")
        assert record["feedback"]["source"] == "truth"


async def test_a_frozen_step_in_choice_mode_scores_once_and_claims_no_lift() -> None:
    records, _ = await frozen_trace("fake", answer_mode="choice")
    for record in records:
        assert sum(calls(record).values()) == 1  # no second scoring pass for the lift
        assert record["prediction"]["distribution"]
        assert record["prediction"]["distribution_h0"] is None  # not measured, not 0


async def test_frozen_judge_mode_makes_no_judge_call() -> None:
    model, seen = counting()
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    ctx = make_context(model, feedback="judge", freeze=True)
    days = [{"input": day["input"]} for day in SEQ[:3]]
    await run_sequence(graph, days, thread_id="j", context=ctx)
    records = await read_trace(store, "j")
    assert len(seen) == 3
    assert [r["correct"] for r in records] == [None, None, None]
    assert all(r["enforcement"] == "frozen" for r in records)


async def test_frozen_deferred_mode_still_waits_for_the_truth_to_score_it() -> None:
    model, seen = counting()
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    config: Any = {"configurable": {"thread_id": "d"}}
    ctx = make_context(model, feedback="deferred", freeze=True)
    first = await graph.ainvoke({"observations": [{"input": SEQ[0]["input"]}]}, config, context=ctx)
    assert first["__interrupt__"]
    done = await graph.ainvoke(Command(resume="heavy rain"), config, context=ctx)
    record = done["last_step"]
    assert record["target"] == "heavy rain"
    assert record["correct"] is not None
    assert record["enforcement"] == "frozen"
    assert len(seen) == 1


async def test_the_summary_counts_frozen_steps_as_neither_accepted_nor_rejected() -> None:
    records, _ = await frozen_trace()
    text = str(run_summary(records).renderable)  # type: ignore[attr-defined]
    assert f"rewrites rejected: 0 of 0 · frozen {len(SEQ)}" in text  # no rewrite was asked for


def test_run_freeze_makes_one_call_per_step(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "llm_as_rnn", "run", "--model", "fake", "--steps", "3"]
    out = subprocess.run(
        [*command, "--freeze", "--json", "--db", str(tmp_path / "f.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    steps = [json.loads(line) for line in out.stdout.splitlines()]
    assert [s["calls"] for s in steps] == [1, 1, 1]
    assert len({s["memory"] for s in steps}) == 1
