"""The local prefix cache: what choice mode's h_0 scoring adds to the predictor's prefill.

Choice mode scores the labels twice a step once the memory has changed: after
the prompt with the memory (the predictor), and after the same prompt with h_0
(the memory's lift). The h_0 prompt is the same at every step of every
sequence but for the observation, so with the prefix cache
(``runtime.prefixes``) its prefill runs only what follows the first
difference. Measured on the bundled model, weather, method rnn, choice
answers (``common.EMBEDDED_WEATHER``), 2 sequences x 4 steps (2 in a quick
run), 64 new tokens a call: once with the cache off
(``LLM_AS_RNN_PREFIX_CACHE_MB=0``), once on (its default size), in one
process.

Reported for each run: the mean prefill time of a predictor scoring and of an
h_0 scoring (the prompt's pass, ``runtime.scoring.run_prompt``, timed on the
torch thread; the labels' passes are not prefill), and
``h0_over_predictor_prefill``, their ratio (target <= 0.20 with the cache);
``peak_cache_bytes`` against ``configured_bytes``; ``same_answers``: whether
both runs made the same predictions and wrote the same memories (a cached
prefix can round differently from one pass, so a near-tie could in
principle go the other way: ``runtime.prefill``).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections import defaultdict
from typing import Any

import common

from llm_as_rnn.core import calls, choice
from llm_as_rnn.runtime.prefixes import prefix_cache_bytes

H0: contextvars.ContextVar[Any] = contextvars.ContextVar("h0", default=None)
KIND: contextvars.ContextVar[str] = contextvars.ContextVar("kind", default="other")
PREFILLS: dict[str, list[float]] = defaultdict(list)
"""Seconds of each scored prompt's prefill, by kind: ``predictor`` or ``h0``."""


def record_prefills(backend: Any) -> None:
    """Time every scored prompt's prefill into ``PREFILLS`` by kind (h_0 told by identity)."""
    choose, score, label_prompt = calls.choose, choice.score_labels, backend.label_prompt

    async def choosing(backend: Any, labels: Any, messages: Any, h0: Any, policy: Any) -> Any:
        H0.set(h0)
        return await choose(backend, labels, messages, h0, policy)

    async def scoring(backend: Any, messages: Any, *args: Any) -> Any:
        KIND.set("h0" if messages is H0.get() else "predictor")
        return await score(backend, messages, *args)

    def prefill(query: Any) -> Any:  # on the torch thread, in the scoring call's context
        start = time.perf_counter()
        try:
            return label_prompt(query)
        finally:
            PREFILLS[KIND.get()].append(time.perf_counter() - start)

    calls.choose, choice.score_labels, backend.label_prompt = choosing, scoring, prefill


async def measured(backend: Any, capacity: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the evaluation with the cache at ``capacity`` bytes; return its figures and steps."""
    backend.prefixes.capacity = capacity
    PREFILLS.clear()
    start = time.perf_counter()
    run = await common.evaluate(
        **common.EMBEDDED_WEATHER,
        sequences=2,
        steps=common.sized(4, 2),
        max_new_tokens=64,
        answer_mode="choice",
        concurrency=2,
    )
    wall = time.perf_counter() - start
    mean = {kind: sum(t) / len(t) if t else 0.0 for kind, t in PREFILLS.items()}
    predictor, h0 = mean.get("predictor", 0.0), mean.get("h0", 0.0)
    figures = {
        "wall_s": round(wall, 1),
        "prefills": {kind: len(t) for kind, t in sorted(PREFILLS.items())},
        "predictor_prefill_s": round(predictor, 3),
        "h0_prefill_s": round(h0, 3),
        "h0_over_predictor_prefill": round(h0 / predictor, 3) if predictor else None,
    }
    return figures, sorted(run.steps, key=lambda s: (s["sequence"], s["step"]))


def largest_change(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """Return the largest change of a label probability between two runs' steps."""
    changes = [
        abs(x[key][label] - y[key][label])
        for x, y in zip(a, b, strict=True)
        for key in ("distribution", "distribution_h0")
        if x[key] and y[key]
        for label in x[key]
    ]
    return max(changes, default=0.0)


async def main() -> None:
    from llm_as_rnn import Context
    from llm_as_rnn.runtime.resolve import aresolve

    backend = await aresolve(Context(model="embedded").model, Context().endpoint())  # untimed
    record_prefills(backend)
    configured = prefix_cache_bytes()
    off, off_steps = await measured(backend, 0)
    print(f"  cache off: {off}", file=sys.stderr)
    on, on_steps = await measured(backend, configured)
    print(f"  cache on: {on}", file=sys.stderr)
    fields = ("sequence", "step", "prediction", "memory")
    same = [[s[f] for f in fields] for s in on_steps] == [[s[f] for f in fields] for s in off_steps]
    common.emit(
        {
            "benchmark": "prefix_cache",
            "cache_on": on,
            "cache_off": off,
            "h0_over_predictor_prefill": on["h0_over_predictor_prefill"],
            "peak_cache_bytes": backend.prefixes.peak,
            "configured_bytes": configured,
            "same_answers": same,
            "largest_probability_change": largest_change(on_steps, off_steps),
            "target": "h0_over_predictor_prefill <= 0.20, peak_cache_bytes <= configured_bytes",
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
