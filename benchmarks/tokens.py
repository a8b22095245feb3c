"""Prompt tokens per step as the sequence grows: LLM-as-RNN stays flat, FHC grows.

Weather, 200 steps, a fake model whose rewrites always fill the memory budget
(the worst case for LLM-as-RNN). Measured at t = 10, 100, 200:
- ``rnn``: the predictor's prompt at step t (memory + observation: the
  context a prediction is made from, as FHC's prompt is for FHC);
- ``rnn_total``: all calls of the step (predict + critique + rewrite);
- ``fhc``: the FHC prompt at step t with every past step kept (no context cap).
rnn_growth = rnn(200) / rnn(10) (target <= 1.2); fhc_over_rnn = fhc(200) /
rnn(200) (target >= 10). Deterministic: one run is enough, repeated 3 times (once in a
quick run).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import common
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, build_graph, get_task, read_trace, run_sequence
from llm_as_rnn.data import weather
from llm_as_rnn.evals.baselines import fhc_messages
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.testing import FunctionChatModel, rule_based

STEPS, BUDGET, POINTS = 200, 512, (10, 100, 200)
TASK = get_task("weather")


def filling(messages: list[BaseMessage]) -> str:
    """Rule-based, but every rewrite is a memory just under the budget."""
    last = str(messages[-1].content)
    if "Current notes:" in last:
        step = re.search(r"^Step (\d+):", last, re.M)
        lines = {s: [] for s in TASK.sections}
        n = 0
        while True:
            section = TASK.sections[n % 3]
            lines[section].append(f"- lesson {n} learned by step {step.group(1) if step else '?'}")
            text = "\n\n".join(f"## {s}\n" + "\n".join(ls) for s, ls in lines.items())
            if approx_tokens(text) > BUDGET - 12:
                lines[section].pop()
                return "\n\n".join(f"## {s}\n" + "\n".join(ls) for s, ls in lines.items())
            n += 1
    return rule_based(0)(messages)


async def once() -> dict[str, Any]:
    observations = weather.window(0, STEPS)
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    ctx = Context(model=FunctionChatModel(respond=filling), budget=BUDGET)
    await run_sequence(graph, observations, thread_id="t", context=ctx)
    trace = await read_trace(store, "t")
    rnn = {t: trace[t - 1]["usage"]["predictor"]["prompt_tokens"] for t in POINTS}
    total = {t: sum(u["prompt_tokens"] for u in trace[t - 1]["usage"].values()) for t in POINTS}
    history = [
        {"step": i + 1, "input_text": TASK.render_input(o["input"]), "target": o["target"]}
        for i, o in enumerate(observations)
    ]
    fhc = {}
    for t in POINTS:
        messages, dropped = fhc_messages(
            TASK,
            history[: t - 1],
            TASK.render_input(observations[t - 1]["input"]),
            approx_tokens,
            10**9,
        )
        assert dropped == 0
        fhc[t] = sum(approx_tokens(str(m.content)) + 4 for m in messages)
    full = [r["memory_tokens"] for r in trace]
    return {
        "rnn": rnn,
        "rnn_total": total,
        "fhc": fhc,
        "memory_tokens_min_after_10": min(full[10:]),
        "memory_tokens_max": max(full),
        "rnn_growth": round(rnn[200] / rnn[10], 4),
        "rnn_total_growth": round(total[200] / total[10], 4),
        "fhc_over_rnn": round(fhc[200] / rnn[200], 3),
        "fhc_over_rnn_total": round(fhc[200] / total[200], 3),
    }


def main() -> None:
    runs = common.repeat(lambda: asyncio.run(once()), common.sized(3, 1))
    last = runs[-1]
    common.emit(
        {
            "benchmark": "tokens",
            "steps": STEPS,
            "budget": BUDGET,
            **last,
            "rnn_growth": common.median_of(runs, "rnn_growth"),
            "fhc_over_rnn": common.median_of(runs, "fhc_over_rnn"),
            "targets": "rnn_growth <= 1.2, fhc_over_rnn >= 10",
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
