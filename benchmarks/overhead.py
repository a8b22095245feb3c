"""Overhead of the machinery: a 100-step sequence with a 20 ms fake model.

The real graph, the SQLite checkpointer and store (durable after every
timestep), the call journal and the trace; the model is a fake chat model
that takes 20 ms per call. ideal_s = calls x 20 ms; ratio = wall / ideal.
Target: ratio <= 1.10.

Also the machinery's cost per step with a model that answers at once
(``ms_per_step_no_latency``) and with the 20 ms one (``ms_per_step``), next
to the frameworks' floor (``floor_ms_per_step*``): the same LangGraph run per
timestep on the same SQLite checkpointer, three nodes each making one
LangChain call of the same fake model, and nothing else. Repetitions of the
two alternate, so machine drift hits both alike; one warm-up pair of the
process's first pass through the code is not counted.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.types import Command

from llm_as_rnn import Context, build_graph, open_storage, read_trace, run_sequence
from llm_as_rnn.core.state import InputState, State
from llm_as_rnn.data import weather
from llm_as_rnn.testing import fake_model

STEPS, LATENCY, CALLS_PER_STEP = 100, 0.020, 3


async def once(latency: float = LATENCY) -> dict[str, float]:
    observations = weather.window(0, STEPS)
    with tempfile.TemporaryDirectory() as tmp:
        async with open_storage(str(Path(tmp) / "bench.db")) as (saver, store):
            graph = build_graph(saver, store)
            ctx = Context(model=fake_model(0, latency), budget=512)
            start = time.perf_counter()
            await run_sequence(graph, observations, thread_id="b", context=ctx)
            wall = time.perf_counter() - start
            trace = await read_trace(store, "b")
    calls = sum(u["calls"] for r in trace for u in r["usage"].values())
    ideal = calls * latency
    return {
        "calls": calls,
        "ideal_s": round(ideal, 3),
        "wall_s": round(wall, 3),
        "ratio": round(wall / ideal, 4) if ideal else 0.0,
        "ms_per_step": round(1000 * (wall - ideal) / STEPS, 3),
    }


def skeleton(model: BaseChatModel, saver: Any) -> Any:
    """The frameworks alone: three nodes, one LangChain call each, routed like ours."""
    prompt = [HumanMessage("Predict tomorrow's weather. Answer: <label>")]

    async def predict(state: State) -> Command[Any]:
        queue = state.get("observations") or []
        await model.ainvoke(prompt)
        return Command(update={"observations": queue[1:], "current": queue[0]}, goto="critique")

    async def critique(state: State) -> dict[str, Any]:
        await model.ainvoke(prompt)
        return {"feedback": None}

    async def rewrite(state: State) -> Command[Any]:
        await model.ainvoke(prompt)
        goto = "predict" if state.get("observations") else "__end__"
        return Command(update={"step": state.get("step", 0) + 1}, goto=goto)

    builder = StateGraph(State, input_schema=InputState)
    builder.add_node("predict", predict, destinations=("critique", "__end__"))
    builder.add_node("critique", critique)
    builder.add_node("rewrite", rewrite, destinations=("predict", "__end__"))
    builder.add_edge(START, "predict")
    builder.add_edge("critique", "rewrite")
    return builder.compile(checkpointer=saver)


async def floor_once(latency: float = LATENCY) -> dict[str, float]:
    """Per-step cost of the skeleton, one run per timestep as ``run_sequence`` does."""
    observations = weather.window(0, STEPS)
    config = {"configurable": {"thread_id": "b"}}
    with tempfile.TemporaryDirectory() as tmp:
        async with open_storage(str(Path(tmp) / "floor.db")) as (saver, _):
            graph = skeleton(fake_model(0, latency), saver)
            start = time.perf_counter()
            for observation in observations:
                payload = {"observations": [observation]}
                await graph.ainvoke(payload, config, durability="exit")
            wall = time.perf_counter() - start
    ideal = STEPS * CALLS_PER_STEP * latency
    return {"ms_per_step": round(1000 * (wall - ideal) / STEPS, 3)}


def alternate(
    latency: float, times: int, warmup: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Repeat the real run and the skeleton, alternately."""
    pairs = common.repeat(
        lambda: {"ours": asyncio.run(once(latency)), "floor": asyncio.run(floor_once(latency))},
        times,
        warmup,
    )
    return [p["ours"] for p in pairs], [p["floor"] for p in pairs]


def main() -> None:
    runs, floor = alternate(LATENCY, 5, warmup=1)
    instant, instant_floor = alternate(0.0, 5)
    common.emit(
        {
            "benchmark": "overhead",
            "steps": STEPS,
            "latency_ms": LATENCY * 1000,
            "calls": runs[0]["calls"],
            "ideal_s": common.median_of(runs, "ideal_s"),
            "wall_s": common.median_of(runs, "wall_s"),
            "ratio": common.median_of(runs, "ratio"),
            "ratio_min": min(r["ratio"] for r in runs),
            "ratio_max": max(r["ratio"] for r in runs),
            "ms_per_step": common.median_of(runs, "ms_per_step"),
            "ms_per_step_no_latency": common.median_of(instant, "ms_per_step"),
            "floor_ms_per_step": common.median_of(floor, "ms_per_step"),
            "floor_ratio": round(
                1 + common.median_of(floor, "ms_per_step") / (1000 * CALLS_PER_STEP * LATENCY), 4
            ),
            "floor_ms_per_step_no_latency": common.median_of(instant_floor, "ms_per_step"),
            "target": "ratio <= 1.10",
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
