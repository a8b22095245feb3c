"""A frozen step's live view says what ran: no critic, one call."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from rich.console import Console

from llm_as_rnn import read_trace, run_sequence
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.data import weather
from llm_as_rnn.frontends.terminal import step_panel
from tests.conftest import make_context


def shown(record: object) -> str:
    console = Console(width=200, record=True)
    console.print(step_panel(record))  # type: ignore[arg-type]
    return console.export_text()


async def test_a_frozen_step_is_scored_by_code_in_one_call() -> None:
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    for thread, freeze in (("frozen", True), ("learning", False)):
        await run_sequence(
            g, weather.window(0, 1), thread_id=thread, context=make_context(freeze=freeze)
        )
    frozen = shown((await read_trace(store, "frozen"))[0])
    assert "scored by code" in frozen
    assert "critique" not in frozen
    assert " 1 call · " in frozen
    learning = shown((await read_trace(store, "learning"))[0])
    assert "critique" in learning
    assert " 3 calls · " in learning
