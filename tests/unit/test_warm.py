"""Warm start: an imported memory is a new thread's h_0, in its identity, with its provenance."""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import ConfigError, OnlineLearner, read_trace, run_sequence
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import recorded_settings
from llm_as_rnn.core.memfile import MemoryFile, render
from llm_as_rnn.core.memory import cut_sections, fit_to_budget
from llm_as_rnn.core.warm import read_import, read_memory_file
from llm_as_rnn.data import weather
from llm_as_rnn.errors import DataError, MemoryFitWarning
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.runtime.storage import open_storage
from llm_as_rnn.tasks import get_task
from llm_as_rnn.testing import rule_based
from tests.conftest import make_context, make_model

TASK = get_task("weather")
SEQ = weather.window(0, 12)


class Prompts:
    """A rule-based model that keeps every prompt it is sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.reply = rule_based(0)

    def __call__(self, messages: list[BaseMessage]) -> str:
        self.sent.append("\n".join(str(m.content) for m in messages))
        return self.reply(messages)


async def learned_memory(steps: int = 5) -> str:
    """A memory learned by a cold thread, as `memory export` would take it."""
    g = build_graph(InMemorySaver(), InMemoryStore())
    done = await run_sequence(g, SEQ[:steps], thread_id="teacher", context=make_context())
    return done.memory


def exported(tmp_path: Path, memory: str, name: str = "exported.json", **fields: Any) -> Path:
    base: dict[str, Any] = {
        "task": "weather",
        "sections": TASK.sections,
        "origin": {"thread": "teacher", "step": 5, "settings": "abc"},
    }
    f = MemoryFile(memory=memory, **{**base, **fields})
    path = tmp_path / name
    path.write_text(render(f), encoding="utf-8")
    return path


async def test_export_then_import_is_byte_identical_h0(tmp_path: Path) -> None:
    memory = await learned_memory()
    path = exported(tmp_path, memory)
    prompts = Prompts()
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    ctx = make_context(make_model(prompts))
    await run_sequence(
        g, SEQ[:2], thread_id="warm", context=ctx, initial_memory=read_memory_file(path)
    )
    first = (await read_trace(store, "warm"))[0]
    assert first["memory_before"].encode() == memory.encode()
    assert memory in prompts.sent[0]  # the step-1 predictor prompt holds it
    assert TASK.initial_memory() not in prompts.sent[0]
    settings = await recorded_settings(store, "warm")
    assert settings is not None
    assert settings["initial_memory"] == "sha256:" + read_memory_file(path).sha256
    assert await read_import(store, "warm") == {
        "sha256": read_memory_file(path).sha256,
        "origin": {"thread": "teacher", "step": 5, "settings": "abc"},
        "edited": False,
        "fitted": False,
        "canonicalised": False,
        "source": "exported.json",  # the name alone, not its folder
        "tokens": approx_tokens(memory),
    }


async def test_a_text_or_the_context_field_start_the_same_thread() -> None:
    memory = await learned_memory()
    traces = []
    for how in ("text", "context"):
        store = InMemoryStore()
        g = build_graph(InMemorySaver(), store)
        if how == "text":
            await run_sequence(
                g, SEQ[:1], thread_id="w", context=make_context(), initial_memory=memory
            )
        else:
            await run_sequence(
                g, SEQ[:1], thread_id="w", context=make_context(initial_memory=memory)
            )
        traces.append(await read_trace(store, "w"))
        imported = await read_import(store, "w")
        assert imported is not None
        assert imported["source"] is None
        assert imported["origin"] == {}
    assert traces[0][0]["memory_before"] == traces[1][0]["memory_before"] == memory
    with pytest.raises(ConfigError, match="two initial memories"):
        await run_sequence(
            build_graph(InMemorySaver(), InMemoryStore()),
            SEQ[:1],
            thread_id="w",
            context=make_context(initial_memory=memory),
            initial_memory=memory.replace("## PATTERNS\n", "## PATTERNS\n- other\n"),
        )


def never(messages: list[BaseMessage]) -> str:
    raise AssertionError("no model call may be made")


@pytest.mark.parametrize(
    ("fields", "memory_edit", "says"),
    [
        ({"task": "sp500"}, None, "learned on task 'sp500', not 'weather'"),
        ({"sections": ("A", "B")}, None, r"sections \(A, B\) are not task 'weather'"),
        ({}, ("## RULES OF THUMB", "## TRENDS"), "missing sections: RULES OF THUMB"),
    ],
)
async def test_another_tasks_memory_is_refused_before_anything(
    tmp_path: Path, fields: dict[str, Any], memory_edit: tuple[str, str] | None, says: str
) -> None:
    memory = TASK.initial_memory()
    if memory_edit is not None:
        memory = memory.replace(*memory_edit)
    f = MemoryFile(memory=memory, **{"task": "weather", "sections": TASK.sections, **fields})
    saver, store = InMemorySaver(), InMemoryStore()
    g = build_graph(saver, store)
    with pytest.raises(DataError, match=says) as raised:
        await run_sequence(
            g, SEQ[:2], thread_id="w", context=make_context(make_model(never)), initial_memory=f
        )
    assert "\n" not in str(raised.value)
    assert list(saver.list(None)) == []
    assert await store.asearch(()) == []
    with pytest.raises(DataError, match=says):
        OnlineLearner(make_context(make_model(never)), initial_memory=f)


async def test_over_budget_is_truncated_with_one_warning(tmp_path: Path) -> None:
    memory = await learned_memory(8)
    budget = approx_tokens(memory) // 2
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    path = exported(tmp_path, memory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await run_sequence(
            g,
            SEQ[:3],
            thread_id="w",
            context=make_context(budget=budget),
            initial_memory=read_memory_file(path),
        )
    said = [str(w.message) for w in caught if issubclass(w.category, MemoryFitWarning)]
    fitted = fit_to_budget(memory, TASK.sections, budget, approx_tokens)
    assert said == [
        f"the initial memory (exported.json) is {approx_tokens(memory)} tokens, over the "
        f"budget λ={budget}: truncated to {approx_tokens(fitted)} tokens (cut: "
        f"{', '.join(cut_sections(memory, fitted, TASK.sections))}; the longest sections first)"
    ]
    assert (await read_trace(store, "w"))[0]["memory_before"] == fitted
    imported = await read_import(store, "w")
    assert imported is not None
    assert imported["fitted"]
    assert imported["tokens"] == approx_tokens(fitted)
    # The identity holds the memory as given: the same file resumes the thread.
    settings = await recorded_settings(store, "w")
    assert settings is not None
    assert settings["initial_memory"] == "sha256:" + read_memory_file(path).sha256
    await run_sequence(
        g,
        SEQ[:4],
        thread_id="w",
        context=make_context(budget=budget),
        initial_memory=read_memory_file(path),
    )
    assert len(await read_trace(store, "w")) == 4


async def test_a_hand_edited_export_is_accepted_and_recorded_edited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    memory = await learned_memory()
    path = exported(tmp_path, memory)
    path.write_text(path.read_text().replace("## RULES OF THUMB", "## RULES OF THUMB\\n- by hand"))
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    with caplog.at_level(logging.INFO, logger="llm_as_rnn"):
        await run_sequence(
            g, SEQ[:1], thread_id="w", context=make_context(), initial_memory=read_memory_file(path)
        )
    assert [m for m in caplog.messages if "was edited by hand" in m] == [
        "info: the initial memory (exported.json) was edited by hand (it does not match its "
        "sha256): accepted, and recorded as edited"
    ]
    imported = await read_import(store, "w")
    assert imported is not None
    assert imported["edited"] is True
    assert "- by hand" in (await read_trace(store, "w"))[0]["memory_before"]


async def test_resume_needs_the_same_memory_and_an_old_thread_keeps_its_own() -> None:
    memory = await learned_memory()
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    ctx = make_context()
    await run_sequence(g, SEQ[:2], thread_id="warm", context=ctx, initial_memory=memory)
    with pytest.raises(
        ConfigError,
        match=r'initial_memory: "sha256:\w{12}…" -> null; it started from the imported memory',
    ):
        await run_sequence(g, SEQ[:3], thread_id="warm", context=ctx)
    other = memory.replace("## PATTERNS\n", "## PATTERNS\n- other\n")
    with pytest.raises(ConfigError, match="initial_memory"):
        await run_sequence(g, SEQ[:3], thread_id="warm", context=ctx, initial_memory=other)
    await run_sequence(g, SEQ[:3], thread_id="warm", context=ctx, initial_memory=memory)
    assert len(await read_trace(store, "warm")) == 3

    await run_sequence(g, SEQ[:2], thread_id="cold", context=ctx)
    with pytest.raises(
        ConfigError,
        match="it has steps from the task's h_0, so its h_0 is behind it",
    ):
        await run_sequence(g, SEQ[:3], thread_id="cold", context=ctx, initial_memory=memory)
    before = (await read_trace(store, "cold"))[-1]["memory_after"]
    await run_sequence(
        g, SEQ[:3], thread_id="cold", context=ctx, initial_memory=memory, allow_new_settings=True
    )
    assert (await read_trace(store, "cold"))[2]["memory_before"] == before  # its own, not h_0
    assert await read_import(store, "cold") is None  # nothing was imported


async def test_online_learner_starts_from_the_import(tmp_path: Path) -> None:
    memory = await learned_memory()
    path = exported(tmp_path, memory)
    prompts = Prompts()
    ctx = make_context(make_model(prompts))
    async with OnlineLearner.aopen(
        tmp_path / "app.db", ctx, initial_memory=read_memory_file(path)
    ) as learner:
        assert await learner.amemory("u") == memory
        await learner.apredict("u", SEQ[0]["input"])
        assert memory in prompts.sent[0]
        assert await read_import(learner.store, "u") is None  # recorded with the settings, at learn
        record = await learner.alearn("u", SEQ[0]["target"])
        assert record["memory_before"] == memory
        imported = await read_import(learner.store, "u")
        assert imported is not None
        assert imported["source"] == "exported.json"
    with (
        OnlineLearner.open(tmp_path / "app.db", ctx) as cold,
        pytest.raises(ConfigError, match="initial_memory"),
    ):
        cold.predict("u", SEQ[1]["input"])


def test_cli_run_starts_a_new_thread_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = asyncio.run(learned_memory())
    path = exported(tmp_path, memory)
    db = tmp_path / "run.db"
    common = ["run", "--model", "fake", "--steps", "2", "--db", str(db), "--json"]
    assert main([*common, "--thread", "warm", "--init-memory", str(path)]) == 0

    async def read() -> tuple[list[Any], dict[str, Any] | None]:
        async with open_storage(str(db)) as (_, store):
            return await read_trace(store, "warm"), await read_import(store, "warm")

    trace, imported = asyncio.run(read())
    assert trace[0]["memory_before"] == memory  # its step-1 predictor prompt is built from it
    assert imported is not None
    assert imported["source"] == "exported.json"

    capsys.readouterr()
    assert main([*common, "--thread", "warm"]) == 2  # resumed without the file
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "initial_memory" in err

    other = exported(tmp_path, TASK.initial_memory(), name="sp.json", task="sp500")
    fresh = tmp_path / "fresh.db"
    assert main([*common[:-3], "--db", str(fresh), "--init-memory", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the memory file was learned on task 'sp500', not 'weather'")
    assert err.count("\n") == 1
    assert not os.path.exists(fresh)
    missing = tmp_path / "nope.json"
    assert main([*common, "--init-memory", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read --init-memory {missing}")
