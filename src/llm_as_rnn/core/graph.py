"""The LLM-as-RNN graph: predict -> critique -> rewrite, looping per timestep.

``build_graph`` compiles it with the checkpointer and store of your choice;
the module-level ``graph`` has neither, for LangGraph Studio / ``langgraph
dev`` and the Agent Server, which bring their own persistence.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.nodes import critique, predict, rewrite
from llm_as_rnn.core.state import InputState, State
from llm_as_rnn.errors import ConfigError


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: BaseStore | None = None
) -> CompiledStateGraph[State, Context, InputState, State]:
    """Compile the recurrent graph.

    ``predict`` and ``rewrite`` route themselves with ``Command(goto=...)``:
    ``predict`` ends a run that brought no observation, ``rewrite`` loops back
    to ``predict`` while the run's queue holds more. A conditional edge would
    be one more traced runnable reading the whole state at every timestep (its
    cost: ``benchmarks/overhead.py``); ``destinations`` draw the same cycle in
    Studio.

    Args:
        checkpointer: Persists each sequence (thread) so it resumes after a crash.
        store: Receives the full step-by-step trace of each thread.
    """
    if not isinstance(checkpointer, BaseCheckpointSaver | None):
        raise ConfigError(f"checkpointer {checkpointer!r} is not a LangGraph checkpointer")
    if not isinstance(store, BaseStore | None):
        raise ConfigError(f"store {store!r} is not a LangGraph store")
    builder = StateGraph(State, context_schema=Context, input_schema=InputState)
    builder.add_node("predict", predict, destinations=("critique", END))
    builder.add_node("critique", critique)
    builder.add_node("rewrite", rewrite, destinations=("predict", END))
    builder.add_edge(START, "predict")
    builder.add_edge("critique", "rewrite")
    return builder.compile(checkpointer=checkpointer, store=store, name="llm_as_rnn")


graph = build_graph()
