"""Concurrency: 32 sequences x 5 steps through the eval runner, 100 ms per call.

The eval runner (method rnn, concurrency 32, one process) against a loopback
OpenAI-compatible fake server (``tests/reliability/fault_server.py`` without
faults) that answers every call after 100 ms. ideal_s = the longest
sequence's serial time (its calls x 100 ms); efficiency = ideal / wall.
Target: efficiency >= 0.75.

Then how it grows: 96 sequences at once, in one process and in
``--workers 2`` processes (``scale_*`` figures).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import common
from tests.reliability.harness import start_server

SEQUENCES, STEPS, LATENCY = 32, 5, 0.100
SCALE_SEQUENCES = 96


async def once(url: str, sequences: int = SEQUENCES, workers: int = 1) -> dict[str, Any]:
    run = await common.evaluate(
        model="openai:fault-model",
        base_url=url,
        tasks=["weather"],
        methods=["rnn"],
        sequences=sequences,
        steps=STEPS,
        budget=512,
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


def main() -> None:
    os.environ.setdefault("OPENAI_API_KEY", "benchmark")
    server = start_server(latency=LATENCY, lifetime=900)
    try:
        runs = common.repeat(lambda: asyncio.run(once(server.url)), 3)
        scale = {
            workers: common.repeat(
                lambda w=workers: asyncio.run(once(server.url, SCALE_SEQUENCES, w)), 3
            )
            for workers in (1, 2)
        }
    finally:
        server.stop()
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
            "target": "efficiency >= 0.75",
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
