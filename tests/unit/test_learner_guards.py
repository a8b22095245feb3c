"""What a hostile tester found in the library: each refused up front, the thread left working.

A budget too small for the memory's headers, two learners with other settings
on one thread, concurrent calls on one thread, a closed learner, and the
learner as a context manager.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import (
    ConfigError,
    Context,
    LearnerStateError,
    OnlineLearner,
    StateError,
    build_graph,
    run_sequence,
)
from llm_as_rnn.core.identity import recorded_settings

DAYS: list[Any] = [{"input": f"day {n}", "target": "dry"} for n in range(3)]


def config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


@pytest.mark.parametrize("small", [{"budget": 5}, {"context": {"model": "fake", "budget": 10}}])
async def test_run_sequence_refuses_a_budget_below_the_headers_before_any_step(
    small: dict[str, Any],
) -> None:
    graph = build_graph(InMemorySaver(), InMemoryStore())
    kwargs: dict[str, Any] = {"context": {"model": "fake"}, **small}
    with pytest.raises(ConfigError, match="section headers alone need"):
        await run_sequence(graph, DAYS, thread_id="s", **kwargs)
    assert not (await graph.aget_state(config("s"))).next  # no step cut short
    done = await run_sequence(graph, DAYS, thread_id="s", context={"model": "fake"}, budget=300)
    assert done.steps_done == 3


async def test_a_step_cut_short_before_its_prediction_does_not_lock_run_sequence() -> None:
    graph = build_graph(InMemorySaver(), InMemoryStore())
    ctx = Context(model="fake", budget=300)
    await run_sequence(graph, DAYS[:1], thread_id="s", context=ctx)
    with pytest.raises(ConfigError):  # straight to the graph: the predict node refuses it
        await graph.ainvoke({"observations": [DAYS[1]], "budget": 5}, config("s"), context=ctx)
    assert (await graph.aget_state(config("s"))).next == ("predict",)
    done = await run_sequence(graph, DAYS, thread_id="s", context=ctx)
    assert done.steps_done == 3


async def test_the_graph_refuses_a_budget_beyond_the_largest() -> None:
    graph = build_graph(InMemorySaver(), InMemoryStore())
    ctx = Context(model="fake", budget=300)
    with pytest.raises(ConfigError, match="invalid budget"):
        await graph.ainvoke({"observations": DAYS[:1], "budget": 10**9}, config("b"), context=ctx)


async def test_a_learner_refuses_a_budget_below_the_headers_before_predicting() -> None:
    learner = OnlineLearner(Context(model="fake", budget=10))
    with pytest.raises(ConfigError, match="section headers alone need"):
        await learner.apredict("u", "rain")
    assert not (await learner.graph.aget_state(config("u"))).values  # nothing to discard
    with pytest.raises(LearnerStateError):
        await learner.adiscard("u")


async def test_a_pending_step_is_learned_with_the_settings_it_was_predicted_with() -> None:
    saver, store = InMemorySaver(), InMemoryStore()
    a = OnlineLearner(Context(model="fake", budget=300), checkpointer=saver, store=store)
    b = OnlineLearner(
        Context(model="fake:1", budget=300),
        checkpointer=saver,
        store=store,
        allow_new_settings=True,
    )
    await a.apredict("u", "rain")
    with pytest.raises(ConfigError, match="pending step 1 was predicted with other settings"):
        await b.alearn("u", "dry")
    assert (await a.alearn("u", "dry"))["step"] == 1
    await a.apredict("u", "sun")
    await a.adiscard("u")
    await a.apredict("new", "sun")
    await a.adiscard("new")
    for kind in ("settings", "pending"):  # a discarded new thread leaves no settings behind
        assert await recorded_settings(store, "new", kind) is None


async def test_concurrent_calls_on_one_thread_lose_no_prediction() -> None:
    learner = OnlineLearner(Context(model="fake", budget=300))
    results = await asyncio.gather(
        learner.apredict("u", "rain"), learner.apredict("u", "sun"), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["LearnerStateError", "dict"]
    record = await learner.alearn("u", "dry")
    kept = next(r for r in results if isinstance(r, dict))
    assert record["prediction"] == kept


def test_a_closed_learner_says_so(tmp_path: Path) -> None:
    with OnlineLearner.open(tmp_path / "app.db", Context(model="fake", budget=300)) as learner:
        learner.predict("u", "rain")
        assert learner.learn("u", "dry")["step"] == 1
    for call in (
        lambda: learner.predict("u", "rain"),
        lambda: learner.learn("u", "dry"),
        lambda: learner.discard("u"),
        lambda: learner.memory("u"),
        lambda: learner.history("u"),
        lambda: learner.discarded("u"),
    ):
        with pytest.raises(StateError, match="the learner is closed"):
            call()


async def test_a_learner_from_aopen_is_closed_after_its_block(tmp_path: Path) -> None:
    async with OnlineLearner.aopen(str(tmp_path / "app.db"), {"model": "fake"}) as learner:
        await learner.amemory("u")
    with pytest.raises(StateError, match="the learner is closed"):
        await learner.amemory("u")
