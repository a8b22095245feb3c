"""Concurrency: 32 sequences x 5 steps through the eval runner, 100 ms per call.

The eval runner (method rnn, concurrency 32, one process) against a loopback
OpenAI-compatible fake server (``tests/reliability/fault_server.py`` without
faults) that answers every call after 100 ms. ideal_s = the longest
sequence's serial time (its calls x 100 ms); efficiency = ideal / wall.

Beside it, the frameworks' floor on the same server and call pattern: 32
sequences x 5 steps at once in this process, each step one LangGraph run of
``common.floor_graph`` (three nodes, one ``ChatOpenAI`` call each, sending
the three prompts of a weather step with each role's sampling parameters as
ours sends them) on the same SQLite checkpointer, and nothing else of ours
(its rewrite asks for free text: the JSON schema of a structured update is
ours); ``floor_efficiency`` is its ideal (5 steps x 3 calls x
100 ms) over its wall. ``efficiency_over_floor`` = efficiency /
floor_efficiency, the median over the alternated pairs of each pair's
quotient (both runs of a pair share that minute's load on this shared
machine). Target: efficiency_over_floor >= 0.90. What is left below 1 is
client CPU: the calls of 32 sequences queue on one event loop, so each
millisecond of CPU per call in our code costs the whole run.

Then how it grows: 96 sequences at once, in one process and in
``--workers 2`` processes (``scale_*`` figures). A quick run
(``common.quick``) makes fewer repetitions, one of each scale run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from langchain_core.messages import BaseMessage
from tests.reliability.harness import start_server

from llm_as_rnn import Context, get_task, open_storage
from llm_as_rnn.core import prompts
from llm_as_rnn.core.memory import output_limit
from llm_as_rnn.data import weather

SEQUENCES, STEPS, LATENCY, CALLS_PER_STEP = 32, 5, 0.100, 3
SCALE_SEQUENCES = 96
REPETITIONS, SCALE_REPETITIONS = common.sized(5, 3), common.sized(3, 1)
MODEL, BUDGET = "fault-model", 512


async def once(url: str, sequences: int = SEQUENCES, workers: int = 1) -> dict[str, Any]:
    run = await common.evaluate(
        model=f"openai:{MODEL}",
        base_url=url,
        tasks=["weather"],
        methods=["rnn"],
        sequences=sequences,
        steps=STEPS,
        budget=BUDGET,
        concurrency=sequences,
        workers=workers,
        request_timeout=30,
    )
    # The sequences' run time; loading data and writing the report are not counted.
    wall = run.timing["run_s"]
    per_sequence: dict[str, int] = {}
    for r in run.steps:
        per_sequence[r["sequence"]] = per_sequence.get(r["sequence"], 0) + r["calls"]
    ideal = max(per_sequence.values()) * LATENCY
    return {
        "calls": sum(per_sequence.values()),
        "ideal_s": round(ideal, 3),
        "wall_s": round(wall, 3),
        "efficiency": round(ideal / wall, 4),
    }


def step_params() -> dict[str, dict[str, Any]]:
    """Return each node's request parameters as ours sends them: its role's sampling, seed 0."""
    sampling = Context().sampling
    roles = {"predict": "predictor", "critique": "critic", "rewrite": "rewriter"}
    params = {}
    for node, role in roles.items():
        chosen = sampling[role].capped(output_limit(BUDGET))
        params[node] = {
            "temperature": chosen.temperature,
            "top_p": chosen.top_p,
            "max_tokens": chosen.max_new_tokens,
            "seed": 0,  # the eval's default seed
        }
    return params


def step_prompts() -> dict[str, list[BaseMessage]]:
    """Return the three prompts of a weather step from h_0 (what the floor sends every step)."""
    task = get_task("weather")
    memory, day = task.initial_memory(), weather.window(0, 1)[0]
    seen = task.render_input(day["input"])
    lesson = f"Predicted dry; the truth was {day['target']}."
    return {
        "predict": prompts.predict_messages(task, memory, seen, 1),
        "critique": prompts.critique_messages(
            task, memory, seen, "dry", str(day["target"]), "wrong"
        ),
        "rewrite": prompts.rewrite_messages(task, memory, seen, "dry", lesson, BUDGET, 1),
    }


async def floor_once(url: str) -> dict[str, Any]:
    """Run the frameworks' floor: the same sequences and calls, nothing of ours."""
    import openai
    from langchain_openai import ChatOpenAI

    observations = weather.window(0, STEPS)
    with tempfile.TemporaryDirectory() as tmp:
        # Its own HTTP client, as ours has: LangChain's default one is shared by the
        # process and bound to the event loop of its first call (each run has a new loop).
        async with (
            openai.DefaultAsyncHttpxClient(timeout=30) as client,
            open_storage(str(Path(tmp) / "floor.db")) as (saver, _),
        ):
            chat = ChatOpenAI(
                model=MODEL,
                base_url=url,
                api_key=os.environ["OPENAI_API_KEY"],
                max_retries=0,
                timeout=30,
                http_async_client=client,
            )
            graph = common.floor_graph(chat, saver, step_prompts(), step_params())
            start = time.perf_counter()
            await asyncio.gather(
                *(common.floor_sequence(graph, observations, f"s{i}") for i in range(SEQUENCES))
            )
            wall = time.perf_counter() - start
    ideal = STEPS * CALLS_PER_STEP * LATENCY
    return {"wall_s": round(wall, 3), "efficiency": round(ideal / wall, 4)}


def main() -> None:
    os.environ.setdefault("OPENAI_API_KEY", "benchmark")
    server = start_server(latency=LATENCY, lifetime=900)
    try:
        runs, floor = common.alternate(
            lambda: asyncio.run(once(server.url)),
            lambda: asyncio.run(floor_once(server.url)),
            REPETITIONS,
            warmup=1,
        )
        scale = {
            workers: common.repeat(
                lambda w=workers: asyncio.run(once(server.url, SCALE_SEQUENCES, w)),
                SCALE_REPETITIONS,
            )
            for workers in (1, 2)
        }
    finally:
        server.stop()
    over = common.quotients(runs, floor, "efficiency")
    common.emit(
        {
            "benchmark": "concurrency",
            "sequences": SEQUENCES,
            "steps": STEPS,
            "latency_ms": LATENCY * 1000,
            "calls": runs[0]["calls"],
            "ideal_s": common.median_of(runs, "ideal_s"),
            "wall_s": common.median_of(runs, "wall_s"),
            "efficiency": common.median_of(runs, "efficiency"),
            "efficiency_min": min(r["efficiency"] for r in runs),
            "efficiency_max": max(r["efficiency"] for r in runs),
            "floor_wall_s": common.median_of(floor, "wall_s"),
            "floor_efficiency": common.median_of(floor, "efficiency"),
            **common.spread("efficiency_over_floor", over),
            "target": "efficiency_over_floor >= 0.90",
            "scale_sequences": SCALE_SEQUENCES,
            "scale_ideal_s": common.median_of(scale[1], "ideal_s"),
            "scale_wall_s_1_worker": common.median_of(scale[1], "wall_s"),
            "scale_wall_s_2_workers": common.median_of(scale[2], "wall_s"),
            "scale_efficiency_1_worker": common.median_of(scale[1], "efficiency"),
            "scale_efficiency_2_workers": common.median_of(scale[2], "efficiency"),
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
