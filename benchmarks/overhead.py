"""Overhead of the machinery: a 100-step sequence with a 20 ms fake model.

The real graph, the SQLite checkpointer and store (durable after every
timestep), the call journal and the trace; the model is a fake chat model
that sleeps 20 ms per call. ideal_s = calls x 20 ms; ratio = wall / ideal.
Target: ratio <= 1.10.

Also the machinery's cost per step with a model that answers at once
(``ms_per_step_no_latency``) and with the 20 ms one (``ms_per_step``).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import common

from llm_as_rnn import Context, build_graph, read_trace, run_sequence
from llm_as_rnn.storage import open_storage
from llm_as_rnn.tasks.weather import weather_observations
from llm_as_rnn.testing import fake_model

STEPS, LATENCY = 100, 0.020


async def once(latency: float = LATENCY) -> dict[str, float]:
    observations = weather_observations(0, STEPS)
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


def main() -> None:
    runs = common.repeat(lambda: asyncio.run(once()), 5)
    instant = common.repeat(lambda: asyncio.run(once(0.0)), 5)
    common.emit(
        {
            "benchmark": "overhead",
            "steps": STEPS,
            "latency_ms": LATENCY * 1000,
            "calls": runs[0]["calls"],
            "ideal_s": common.median_of(runs, "ideal_s"),
            "wall_s": common.median_of(runs, "wall_s"),
            "ratio": common.median_of(runs, "ratio"),
            "ms_per_step": common.median_of(runs, "ms_per_step"),
            "ms_per_step_no_latency": common.median_of(instant, "ms_per_step"),
            "target": "ratio <= 1.10",
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
