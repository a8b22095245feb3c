"""Shared helpers of the benchmark scripts (each prints one JSON object last)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


QUICK_ENV = "LLM_AS_RNN_BENCH_QUICK"
"""Set to 1 by ``make bench-quick``: every benchmark runs in its reduced size."""


def quick() -> bool:
    """Return whether this is a quick run (``make bench-quick``): same keys, smaller sizes.

    Only ``1`` (quick) and ``0`` or unset (full) are read: anything else ends
    the script with a one-line error (exit 2), as a full run taken for a quick
    one would last an hour and overwrite the full run's page.
    """
    raw = os.environ.get(QUICK_ENV, "").strip()
    if raw not in ("", "0", "1"):
        print(
            f"error: {QUICK_ENV} must be 1 (a quick run) or 0 (the full run), got {raw!r}: "
            f"set {QUICK_ENV}=1 or unset it",
            file=sys.stderr,
        )
        sys.exit(2)
    return raw == "1"


def sized(full: int, reduced: int) -> int:
    """Return ``full``, or ``reduced`` in a quick run (repetitions, steps, sequences)."""
    return reduced if quick() else full


def spread(key: str, values: list[float]) -> dict[str, float]:
    """Return ``key``'s median over repetitions with its least and greatest (``key_min/_max``)."""
    return {
        key: median(values),
        f"{key}_min": round(min(values), 4),
        f"{key}_max": round(max(values), 4),
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    """Return the median of one figure over repetitions."""
    return float(statistics.median(r[key] for r in runs))


def quotients(ours: list[dict[str, Any]], floor: list[dict[str, Any]], key: str) -> list[float]:
    """Return ``ours[key] / floor[key]`` for each alternated pair (report their median).

    The two runs of a pair ran back to back, so the load of that minute on
    this shared machine hits both and cancels in their quotient; a quotient of
    the two medians could set one side's quiet minute against the other's busy one.
    """
    return [o[key] / f[key] for o, f in zip(ours, floor, strict=True)]


def median(values: list[float]) -> float:
    """Return the median of figures, rounded to 4 digits."""
    return round(float(statistics.median(values)), 4)


def repeat(
    measure: Callable[[], dict[str, Any]], times: int, warmup: int = 0
) -> list[dict[str, Any]]:
    """Run a measurement several times (this machine is noisy: report medians).

    ``warmup`` runs come first and are not kept: the process's first pass
    through the code pays one-time costs (lazy imports, first allocations).
    """
    for i in range(warmup):
        print(f"  warm-up {i + 1}/{warmup}: {json.dumps(measure())}", file=sys.stderr)
    runs = []
    for i in range(times):
        runs.append(measure())
        print(f"  repetition {i + 1}/{times}: {json.dumps(runs[-1])}", file=sys.stderr)
    return runs


def alternate(
    ours: Callable[[], dict[str, Any]],
    floor: Callable[[], dict[str, Any]],
    times: int,
    warmup: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Repeat a measurement of ours and of the frameworks' floor, in pairs.

    Machine drift hits both runs of a pair alike; which one goes first swaps
    from pair to pair, so neither always inherits the other's leftovers
    (a warm cache, garbage to collect).
    """
    turn = [0]

    def pair() -> dict[str, Any]:
        turn[0] += 1
        if turn[0] % 2:
            return {"ours": ours(), "floor": floor()}  # evaluated left to right
        floor_first = floor()
        return {"ours": ours(), "floor": floor_first}

    pairs = repeat(pair, times, warmup)
    return [p["ours"] for p in pairs], [p["floor"] for p in pairs]


def floor_graph(
    model: BaseChatModel,
    saver: Any,
    prompts: Mapping[str, list[BaseMessage]] | None = None,
    params: Mapping[str, dict[str, Any]] | None = None,
) -> Any:
    """Return the frameworks alone: three nodes, one LangChain call each, routed like ours.

    The frameworks' floor of the comparative benchmarks: LangGraph on our state
    schema and checkpointer, and nothing else of ours. ``prompts``: each node's
    prompt (``predict``, ``critique``, ``rewrite``), sent as it is (a one-line
    prompt by default); ``params``: each node's call parameters (none by default).
    """
    from langchain_core.messages import HumanMessage
    from langgraph.graph import START, StateGraph
    from langgraph.types import Command

    from llm_as_rnn.core.state import InputState, State

    line = [HumanMessage("Predict tomorrow's weather. Answer: <label>")]
    nodes = ("predict", "critique", "rewrite")
    sent = dict.fromkeys(nodes, line) | dict(prompts or {})
    kwargs = {node: {} for node in nodes} | dict(params or {})

    async def predict(state: State) -> Command[Any]:
        queue = state.get("observations") or []
        await model.ainvoke(sent["predict"], **kwargs["predict"])
        return Command(update={"observations": queue[1:], "current": queue[0]}, goto="critique")

    async def critique(state: State) -> dict[str, Any]:
        await model.ainvoke(sent["critique"], **kwargs["critique"])
        return {"feedback": None}

    async def rewrite(state: State) -> Command[Any]:
        await model.ainvoke(sent["rewrite"], **kwargs["rewrite"])
        goto = "predict" if state.get("observations") else "__end__"
        return Command(update={"step": state.get("step", 0) + 1}, goto=goto)

    builder = StateGraph(State, input_schema=InputState)
    builder.add_node("predict", predict, destinations=("critique", "__end__"))
    builder.add_node("critique", critique)
    builder.add_node("rewrite", rewrite, destinations=("predict", "__end__"))
    builder.add_edge(START, "predict")
    builder.add_edge("critique", "rewrite")
    return builder.compile(checkpointer=saver)


async def floor_sequence(graph: Any, observations: list[Any], thread: str) -> None:
    """Run the floor graph over a sequence, one run per timestep as ``run_sequence`` does."""
    config = {"configurable": {"thread_id": thread}}
    for observation in observations:
        await graph.ainvoke({"observations": [observation]}, config, durability="exit")


@dataclass
class Evaluation:
    """What an evaluation run in a temporary folder wrote."""

    summary: dict[str, Any]
    timing: dict[str, Any]
    steps: list[dict[str, Any]]


async def evaluate(**fields: Any) -> Evaluation:
    """Run the eval runner with these ``EvalConfig`` fields in a temporary folder."""
    from rich.console import Console

    from llm_as_rnn.evals.config import EvalConfig
    from llm_as_rnn.evals.runner import run_eval

    with tempfile.TemporaryDirectory() as tmp:
        config = EvalConfig(out=tmp, **fields)
        summary = await run_eval(config, "benchmark", Console(stderr=True, quiet=True))
        out = Path(tmp)
        timing = json.loads((out / "timing.json").read_text())
        steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    return Evaluation(summary, timing, steps)


EMBEDDED_WEATHER: dict[str, Any] = {
    "model": "embedded",
    "tasks": ["weather"],
    "methods": ["rnn"],
    "budget": 256,
    "seed": 4,
}
"""The eval settings of the bundled-model benchmarks (small budget: a 135M model)."""


def rewrite_prompts(starts: list[int]) -> list[Any]:
    """Return the weather rewriter's prompt for the day at each start index (h_0, wrong "dry").

    The model writes at length after these, so decoding (not prefill) dominates.
    """
    from llm_as_rnn import get_task
    from llm_as_rnn.core import prompts
    from llm_as_rnn.data import weather

    task = get_task("weather")
    chats = []
    for start in starts:
        o = weather.window(start, 1)[0]
        chats.append(
            prompts.rewrite_messages(
                task,
                task.initial_memory(),
                task.render_input(o["input"]),
                "dry",
                f"Predicted dry; the truth was {o['target']}.",
                256,
                1,
            )
        )
    return chats


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's single JSON result line."""
    print(json.dumps(result, sort_keys=True))
