"""What a trace keeps and shows: rejected rewrites' text, the thread's settings and models."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, read_trace, run_sequence
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import record_settings, settings_of
from llm_as_rnn.core.state import CUT_MARK, REJECTED_LIMIT
from llm_as_rnn.data import weather
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.runtime.storage import open_storage
from llm_as_rnn.testing import rule_based
from tests.conftest import make_context, make_model

SEQ = weather.window(0, 3)
GARBAGE = "no headers here " * 2000  # 32,000 characters a rewrite


def rewriter_writes(text: str) -> Any:
    """The rule-based model, but every rewrite (and re-ask) answers ``text``."""
    fake = rule_based(0)

    def respond(messages: list[BaseMessage]) -> str:
        last = str(messages[-1].content)
        return (
            text
            if "Rewrite the notes below" in last or "could not be used" in last
            else fake(messages)
        )

    return make_model(respond)


async def test_a_rejected_rewrite_is_recorded_bounded_under_its_reason() -> None:
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    ctx = make_context(rewriter_writes(GARBAGE), reask_attempts=1)
    await run_sequence(graph, SEQ, thread_id="t", context=ctx)
    trace = await read_trace(store, "t")
    for record in trace:
        assert record["rewrite_rejected"]
        text = record["rejected_rewrite"]
        assert text is not None
        assert text.startswith(
            "[attempt 1, rejected: unparseable rewrite: no section headers]\nno headers here"
        )
        assert "\n\n[attempt 2, rejected: unparseable rewrite: no section headers]\n" in text
        assert text.count(CUT_MARK) == 2  # both clipped, and saying so
        assert len(text) <= REJECTED_LIMIT + 200  # the reasons' lines on top
    state = await graph.aget_state({"configurable": {"thread_id": "t"}})
    assert state.values["last_step"]["rejected_rewrite"] == trace[-1]["rejected_rewrite"]


async def test_an_accepted_rewrite_records_no_rejected_text() -> None:
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    await run_sequence(graph, SEQ, thread_id="t", context=make_context())
    assert [r["rejected_rewrite"] for r in await read_trace(store, "t")] == [None] * 3


def test_the_page_opens_with_settings_and_models_and_folds_rejected_rewrites(
    tmp_path: Path, capsys: Any
) -> None:
    db, page = str(tmp_path / "t.db"), tmp_path / "t.html"
    # a 20-token cap cuts every fake rewrite: each step's rewrite is rejected
    run = ["run", "--model", "fake", "--steps", "2", "--max-new-tokens", "20"]
    assert main([*run, "--db", db, "--thread", "t"]) == 0
    password = "pa55word-of-the-endpoint"
    ctx = Context(
        model="openai:served-model",
        critic_model="fake:3",
        base_url=f"http://user:{password}@127.0.0.1:9/v1",
    )

    async def record() -> None:  # the same thread, as if an endpoint had served it
        async with open_storage(db) as (_, store):
            await record_settings(store, "t", settings_of(ctx, 512))

    asyncio.run(record())
    assert main(["trace", "--db", db, "--thread", "t", "--html", str(page)]) == 0
    html = page.read_text()
    head = html[: html.index("<div class='plots'>")]  # the settings come first
    models = re.search(r"<table class='models'>(.*?)</table>", head, re.S)
    assert models is not None
    rows = re.findall(r"<tr><td>(\w+)</td><td><b>([^<]*)</b></td><td>([^<]*)</td>", models[1])
    assert [(role, spec) for role, spec, _ in rows] == [
        ("predictor", "openai: served-model"),
        ("critic", "fake: 3"),
        ("rewriter", "openai: served-model"),
    ]
    assert "endpoint: http://127.0.0.1:9/v1" in rows[0][2]
    assert "temperature 0.3" in models[1]  # the critic's sampling
    assert "<th>budget</th><td>512</td>" in head
    assert "<th>answer_mode</th><td>free</td>" in head
    assert password not in html
    # the rejected rewrite's text, folded under its kind (the last attempt's) and reasons
    folded = re.findall(
        r"<th>rejected</th><td>unparseable: rewrite cut off at its limit of 20 tokens[^<]*"
        r"<details[^>]*><summary>[^<]*</summary><pre>\[attempt 1, rejected: [^\]]*\]\n## PATTERNS",
        html,
    )
    assert len(folded) == 2


def page_figures(monkeypatch: Any, steps: int) -> list[Any]:
    """Draw a thread's page plots (budget 4096), keeping each figure's axes as drawn."""
    from matplotlib.figure import Figure

    from llm_as_rnn.frontends import html

    kept: list[Any] = []
    savefig = Figure.savefig

    def keep(figure: Figure, *args: Any, **kwargs: Any) -> None:
        kept.append(figure.axes[0])
        savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    observations = weather.window(0, steps)
    asyncio.run(run_sequence(graph, observations, thread_id="t", context=make_context()))
    html.render_html(asyncio.run(read_trace(store, "t")), "t")
    return kept


def test_the_page_s_memory_plot_fits_the_memories_as_the_report_s_does(monkeypatch: Any) -> None:
    memory, correct = page_figures(monkeypatch, 6)
    assert memory.get_ylim()[1] < 1000  # not squashed under the 4096 budget
    assert "budget 4096 (above)" in memory.get_legend_handles_labels()[1]
    low, high = memory.get_xlim()
    assert [t for t in memory.get_xticks() if low <= t <= high] == [1, 2, 3, 4, 5, 6]
    assert "running accuracy" in correct.get_legend_handles_labels()[1]


def test_a_one_step_thread_has_one_tick_and_visible_points(monkeypatch: Any) -> None:
    memory, correct = page_figures(monkeypatch, 1)
    for axes in (memory, correct):
        assert list(axes.get_xticks()) == [1]
    (running,) = [line for line in correct.get_lines() if line.get_label() == "running accuracy"]
    assert running.get_marker() not in (None, "None", "")  # one point of a line shows


def test_an_unset_token_cap_says_what_it_follows() -> None:
    from llm_as_rnn.frontends.html import settings_section

    settings = settings_of(Context(model="fake"), 4096)
    row = re.search(r"<td>rewriter</td>.*?</tr>", settings_section(settings))
    assert row is not None
    assert "max new tokens fits the memory (at most 5184)" in row[0]
    assert "default" not in row[0]


def test_a_panel_shows_the_start_of_a_rejected_rewrite_and_how_much_more() -> None:
    from llm_as_rnn.frontends.terminal import glimpse

    rambling = "[attempt 1, rejected: cut off]\n" + "##\n\n" * 200
    shown = glimpse(rambling)
    assert shown.splitlines()[:2] == ["[attempt 1, rejected: cut off]", "##"]
    assert len(shown.splitlines()) == 7  # six lines, then the count of the rest
    assert shown.endswith("... 195 more lines (trace --html shows them)")
    assert glimpse("short\n\nrewrite") == "short\nrewrite"
    assert len(glimpse("word " * 500)) <= 300
