"""The LLM-as-RNN graph: predict -> critique -> rewrite, looping per timestep.

``build_graph`` compiles it with the checkpointer and store of your choice;
the module-level ``graph`` has neither, for LangGraph Studio / ``langgraph
dev`` and the Agent Server, which bring their own persistence.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from llm_as_rnn.context import Context
from llm_as_rnn.nodes import critique, predict, rewrite
from llm_as_rnn.state import InputState, State


async def route_next(state: State) -> Literal["predict", "__end__"]:
    """Go on to the next timestep while observations remain in the run's queue.

    Async on purpose: LangGraph runs a sync router in a worker thread, two
    thread hops per timestep for a dictionary lookup.
    """
    return "predict" if state.get("observations") else "__end__"


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: BaseStore | None = None
) -> CompiledStateGraph[State, Context, InputState, State]:
    """Compile the recurrent graph.

    Args:
        checkpointer: Persists each sequence (thread) so it resumes after a crash.
        store: Receives the full step-by-step trace of each thread.
    """
    builder = StateGraph(State, context_schema=Context, input_schema=InputState)
    builder.add_node("predict", predict)
    builder.add_node("critique", critique)
    builder.add_node("rewrite", rewrite)
    builder.add_conditional_edges(START, route_next, ["predict", END])
    builder.add_edge("predict", "critique")
    builder.add_edge("critique", "rewrite")
    builder.add_conditional_edges("rewrite", route_next, ["predict", END])
    return builder.compile(checkpointer=checkpointer, store=store, name="llm_as_rnn")


graph = build_graph()
