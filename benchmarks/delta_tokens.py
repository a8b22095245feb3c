"""Rewriter output tokens per step: full rewrites vs delta operations, at lambda = 4096.

Weather, 2 sequences x 30 steps, method rnn, the fake model that never
forgets a note (``fake-long``): in ``full`` mode it re-emits the whole
memory every step, as the paper's rewriter does, so its output grows toward
lambda; in ``delta`` mode it emits a few operations. delta_over_full = mean
rewriter completion tokens per step, delta over full. The memory invariant
is checked at every step of both.
"""

from __future__ import annotations

import asyncio
import statistics
import sys

import common

from llm_as_rnn.core.memory import missing_sections
from llm_as_rnn.tasks import get_task

BUDGET, SEQUENCES, STEPS = 4096, 2, 30


async def mode(rewrite_mode: str) -> dict[str, float]:
    run = await common.evaluate(
        model="fake-long",
        tasks=["weather"],
        methods=["rnn"],
        sequences=SEQUENCES,
        steps=STEPS,
        budget=BUDGET,
        rewrite_mode=rewrite_mode,
    )
    steps = [s for s in run.steps if s["method"] == "rnn"]
    sections = get_task("weather").sections
    held = all(
        s["memory_tokens"] <= BUDGET and not missing_sections(s["memory"], sections) for s in steps
    )
    tokens = [s["usage"]["rewriter"]["completion_tokens"] for s in steps]
    return {
        "rewriter_completion_tokens_per_step": statistics.mean(tokens),
        "max_memory_tokens": max(s["memory_tokens"] for s in steps),
        "steps": len(steps),
        "invariant_held_every_step": held,
    }


def main() -> None:
    full, delta = asyncio.run(mode("full")), asyncio.run(mode("delta"))
    print(f"  full: {full}\n  delta: {delta}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "delta_tokens",
            "budget": BUDGET,
            "steps": STEPS,
            "sequences": SEQUENCES,
            "full": full,
            "delta": delta,
            "delta_over_full": round(
                delta["rewriter_completion_tokens_per_step"]
                / full["rewriter_completion_tokens_per_step"],
                4,
            ),
            "invariant_held": full["invariant_held_every_step"]
            and delta["invariant_held_every_step"],
            "target": "delta_over_full <= 0.10, invariant held every step",
        }
    )


if __name__ == "__main__":
    main()
