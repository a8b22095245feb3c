"""Model calls per step of the three step modes (the paper's open question 3).

The eval runner on weather (4 sequences x 10 steps, method rnn) for each
``--step-mode``: ``three-call`` (predict, critique, rewrite), ``fused``
(critique and rewrite in one call) and ``lazy`` (no rewrite after a right
prediction). With the deterministic fake model the counts are exact; set
``STEP_MODES_MODEL=embedded`` to run the same comparison on the bundled model
(2 sequences x 4 steps, 64 new tokens per call; a quick run: 1 x 1, 24;
accuracy included; it is a 135M model: the numbers exercise the modes, they
are not results).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import common

MODEL = os.environ.get("STEP_MODES_MODEL", "fake")
SEQUENCES, STEPS = (4, 10) if MODEL.startswith("fake") else (common.sized(2, 1), common.sized(4, 1))
NEW_TOKENS = common.sized(64, 24)


async def mode(step_mode: str) -> dict[str, Any]:
    run = await common.evaluate(
        model=MODEL,
        tasks=["weather"],
        methods=["rnn"],
        sequences=SEQUENCES,
        steps=STEPS,
        budget=256,
        step_mode=step_mode,
        max_new_tokens=None if MODEL.startswith("fake") else NEW_TOKENS,
        seed=1,
    )
    stats, timing = run.summary["results"]["weather"]["rnn"], run.timing
    return {
        "calls_per_step": stats["cost_per_step"]["calls"],
        "prompt_tokens_per_step": stats["cost_per_step"]["prompt_tokens"],
        "accuracy": stats["metrics"]["accuracy"]["mean"],
        "error_correction": stats["error_correction"]["rate"],
        "model_seconds_per_step": timing["latency"]["weather"]["rnn"]["latency_s_per_step"],
    }


def main() -> None:
    results = {m: asyncio.run(mode(m)) for m in ("three-call", "fused", "lazy")}
    for name, figures in results.items():
        print(f"  {name}: {json.dumps(figures)}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "step_modes",
            "model": MODEL,
            "sequences": SEQUENCES,
            "steps": STEPS,
            "new_tokens": NEW_TOKENS,
            "modes": results,
            "calls_per_step": {m: r["calls_per_step"] for m, r in results.items()},
            "target": "three-call = 3.0, fused = 2.0, lazy < 3.0 (fake model)",
        }
    )


if __name__ == "__main__":
    main()
