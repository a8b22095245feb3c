"""The README's smoke evaluation on the bundled model, batched vs one call at a time.

``eval --tasks weather,sp500 --methods zero-shot,fhc,memprompt,rnn,rnn-judge
--model embedded --sequences 2 --steps 2 --budget 256 --max-new-tokens 96
--concurrency 4``, run twice in one process (the model loaded once): local
calls one at a time (``LLM_AS_RNN_LOCAL_BATCH=1``), then batched (up to 8).
Reported: each run's wall time, ``wall_ratio`` = batched / one at a time
(target <= 0.5), how many rows the batched run's decoding passes carried
(``rows_per_pass``: calls join and leave a running batch between passes,
``runtime.engine``), and whether both runs made the same
predictions (seeded draws are per call, so they should, up to arithmetic
near-ties: ``runtime.decode``). Both runs start from an empty prefix cache
(``runtime.prefixes``): the second would otherwise find every prompt of the
first. No accuracy is claimed from a 135M model.
A quick run: methods zero-shot and rnn, 1 sequence x 1 step, 48 new tokens
(still four sequences for the four calls in flight).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from typing import Any

import common

from llm_as_rnn.runtime.engine import BATCH_ENV

SMOKE: dict[str, Any] = {
    "model": "embedded",
    "tasks": ["weather", "sp500"],
    "methods": ["zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"]
    if not common.quick()
    else ["zero-shot", "rnn"],
    "sequences": common.sized(2, 1),
    "steps": common.sized(2, 1),
    "budget": 256,
    "max_new_tokens": common.sized(96, 48),
    "concurrency": 4,
}
"""The README's smoke eval; a quick run keeps four sequences in flight, smaller."""


async def timed(backend: Any, batch: int) -> tuple[float, list[dict[str, Any]]]:
    os.environ[BATCH_ENV] = str(batch)
    backend.prefixes.clear()  # each run from an empty prefix cache: both make the same calls
    start = time.perf_counter()
    run = await common.evaluate(**SMOKE)
    return time.perf_counter() - start, run.steps


def rows_per_pass(backend: Any) -> Counter[int]:
    """Return how many decoding passes the local backend ran with each number of rows."""
    return Counter(backend.engine.passes)


def answers(steps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (s["task"], s["method"], s["sequence"], s["step"], str(s["prediction"])) for s in steps
    )


async def main() -> None:
    from llm_as_rnn import Context
    from llm_as_rnn.runtime.resolve import aresolve

    backend = await aresolve(Context(model="embedded").model, Context().endpoint())  # untimed
    serial_s, serial_steps = await timed(backend, 1)
    print(f"  one at a time: {serial_s:.0f} s", file=sys.stderr)
    before = rows_per_pass(backend)
    batched_s, batched_steps = await timed(backend, 8)
    print(f"  batched: {batched_s:.0f} s", file=sys.stderr)
    passes = rows_per_pass(backend) - before
    common.emit(
        {
            "benchmark": "smoke_batching",
            "serial_s": round(serial_s, 1),
            "batched_s": round(batched_s, 1),
            "wall_ratio": round(batched_s / serial_s, 3),
            "rows_per_pass": {str(k): v for k, v in sorted(passes.items())},
            "mean_rows_per_pass": round(
                sum(k * v for k, v in passes.items()) / max(1, passes.total()), 2
            ),
            "steps": len(batched_steps),
            "settings": SMOKE,
            "same_predictions": answers(serial_steps) == answers(batched_steps),
            "target": "wall_ratio <= 0.5",
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
