"""Full rewrites vs delta operations on the bundled 135M model: does the memory change?

Weather, 1 sequence x 10 steps (2 in a quick run), method rnn, budget 256, 96 new tokens per
call (as ``make demo``), seed 4, once per rewrite mode, structured (the
default: constrained to the update's structure) and, in the same run, as
free text (``--structured off``: what every update was before issue 24).
Reported: the share of steps whose memory changed (and after a wrong
prediction, ``changed_after_wrong``), and the share whose rewrite was
rejected (cut off, malformed, dropped sections, unusable operations...),
with the kinds. It exercises the modes on a tiny model: no accuracy is claimed.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

import common

STEPS = common.sized(10, 2)


async def mode(rewrite_mode: str, structured: bool = True) -> dict[str, Any]:
    run = await common.evaluate(
        structured=structured,
        **common.EMBEDDED_WEATHER,
        sequences=1,
        steps=STEPS,
        max_new_tokens=96,
        rewrite_mode=rewrite_mode,
    )
    steps = [s for s in run.steps if s["method"] == "rnn"]
    changed = sum(s["memory"] != s["memory_before"] for s in steps)
    rejected = [s for s in steps if s["rewrite_rejected"]]
    wrong = [s for s in steps if s["correct"] is False]
    return {
        "changed_share": round(changed / len(steps), 3),
        # what a step learns from: after a wrong prediction the memory should change
        "changed_after_wrong": round(
            sum(s["memory"] != s["memory_before"] for s in wrong) / max(len(wrong), 1), 3
        ),
        "wrong_steps": len(wrong),
        "rejected_by_kind": dict(Counter(s.get("rejection_kind") for s in rejected)),
        "rejected_share": round(len(rejected) / len(steps), 3),
        "rewriter_completion_tokens_per_step": round(
            sum(s["usage"]["rewriter"]["completion_tokens"] for s in steps) / len(steps), 1
        ),
        "enforcement": dict(Counter(s["enforcement"] for s in steps)),
    }


def main() -> None:
    full, delta = asyncio.run(mode("full")), asyncio.run(mode("delta"))
    print(f"  full: {full}\n  delta: {delta}", file=sys.stderr)
    free = (
        None
        if common.quick()
        else {m: asyncio.run(mode(m, structured=False)) for m in ("full", "delta")}
    )
    print(f"  free text: {free}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "delta_embedded",
            "steps": STEPS,
            "full": full,
            "delta": delta,
            "free_text": free,
            "target": "delta changed_after_wrong >= 0.60; rejected_share <= 0.10 in both modes",
        }
    )


if __name__ == "__main__":
    main()
