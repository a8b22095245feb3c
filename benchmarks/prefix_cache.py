"""The local prefix cache: what choice mode's h_0 scoring adds to the predictor's prefill.

Once the memory has changed, choice mode scores the labels twice a step
(``core.choice.choose``): after the predictor's prompt with the memory, and
after the same prompt with h_0 (the memory's lift). The h_0 prompt is the
same at every step of every sequence but for the observation, so with the
prefix cache (``runtime.prefixes``) its prefill runs only what follows the
first difference; the predictor's prompt holds a memory new at every step.

Measured on the bundled model, weather (``common.EMBEDDED_WEATHER``'s
task), 8 steps (4 in a quick run) of exactly those two scorings, through
``choose`` and the local backend: the observation of each day, and a memory
of about 250 tokens (the budget) that differs at every step. Not an eval
run: the 135M model keeps h_0 on most steps (its memory changed on 10% of
steps in ``memory_first.py``), and h_0 is scored only once the memory has
changed, so a few-step run would time few h_0 scorings or none. Once with
the cache off (``LLM_AS_RNN_PREFIX_CACHE_MB=0``), once on (its configured
size), in one process, the model loaded first.

Reported for each run: the mean prefill time of a predictor scoring and of an
h_0 scoring (the prompt's pass, ``LocalHFBackend.label_prompt``, timed on the
torch thread; the labels' passes are not prefill), and
``h0_over_predictor_prefill``, their ratio (target <= 0.20 with the cache);
``h0_token_share``: the h_0 prompt's tokens after its longest prefix among the
run's earlier prompts over the predictor's, the least that ratio can be with
any prefix cache while the two prompts run in passes of their own (the
observation, which every step changes, comes after the memory, in the system
prompt: with a causal model its states differ under each memory);
``peak_cache_bytes`` against ``configured_bytes``; ``same_answers``: whether
both runs chose the same labels, and the largest change of a label's
probability between them (a pass from a cached prefix may round differently
from one pass: ``runtime.prefill``).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections import defaultdict
from typing import Any

import common

from llm_as_rnn import Context, get_task
from llm_as_rnn.core import choice, prompts
from llm_as_rnn.data import weather
from llm_as_rnn.runtime.prefixes import common_prefix, prefix_cache_bytes
from llm_as_rnn.runtime.resolve import aresolve

H0: contextvars.ContextVar[Any] = contextvars.ContextVar("h0", default=None)
KIND: contextvars.ContextVar[str] = contextvars.ContextVar("kind", default="other")
PREFILLS: dict[str, list[float]] = defaultdict(list)
"""Seconds of each scored prompt's prefill, by kind: ``predictor`` or ``h0``."""


def record_prefills(backend: Any) -> None:
    """Time every scored prompt's prefill into ``PREFILLS``, by kind."""
    score, label_prompt = choice.score_labels, backend.label_prompt

    async def scoring(backend: Any, messages: Any, *args: Any) -> Any:
        KIND.set("h0" if messages is H0.get() else "predictor")
        return await score(backend, messages, *args)

    def prefill(query: Any) -> Any:  # on the torch thread, in the scoring call's context
        start = time.perf_counter()
        try:
            return label_prompt(query)
        finally:
            PREFILLS[KIND.get()].append(time.perf_counter() - start)

    choice.score_labels, backend.label_prompt = scoring, prefill


def memory_at(task: Any, step: int) -> str:
    """Return a memory of about 250 tokens that no other step has."""
    lines = [f"- Step {step}, pattern {i}: rain follows a falling barometer." for i in range(12)]
    return str(task.initial_memory()).replace("None yet.", "\n".join(lines), 1)


async def measured(backend: Any, capacity: int, steps: int) -> tuple[dict[str, Any], list[Any]]:
    """Score ``steps`` steps' two prompts with the cache at ``capacity`` bytes; return figures."""
    backend.prefixes.capacity = capacity
    PREFILLS.clear()
    task = get_task(common.EMBEDDED_WEATHER["tasks"][0])
    policy = Context(model="embedded").call_policy()
    predictions, seen, shares = [], [], []
    start = time.perf_counter()
    for step, day in enumerate(weather.window(300, steps), start=1):
        observation = task.render_input(day["input"])
        h0 = prompts.predict_messages(task, task.initial_memory(), observation, step)
        messages = prompts.predict_messages(task, memory_at(task, step), observation, step)
        if capacity:
            new = [fresh_tokens(backend, m, seen) for m in (messages, h0)]
            if step > 1:  # the first step's h_0 prompt shares only the system prompt
                shares.append(new[1] / new[0])
        H0.set(h0)
        chosen = await choice.choose(backend, task.labels, messages, h0, policy)
        assert chosen is not None, "the local backend scores labels"
        predictions.append(chosen[0])
    wall = time.perf_counter() - start
    mean = {kind: sum(t) / len(t) for kind, t in PREFILLS.items()}
    predictor, h0_mean = mean["predictor"], mean["h0"]
    figures = {
        "wall_s": round(wall, 1),
        "prefills": {kind: len(t) for kind, t in sorted(PREFILLS.items())},
        "predictor_prefill_s": round(predictor, 3),
        "h0_prefill_s": round(h0_mean, 3),
        "h0_over_predictor_prefill": round(h0_mean / predictor, 3),
    }
    if shares:
        figures["h0_token_share"] = round(sum(shares) / len(shares), 3)
    return figures, predictions


def fresh_tokens(backend: Any, messages: Any, seen: list[list[int]]) -> int:
    """Return how many of a prompt's tokens follow its longest prefix among ``seen``; add it.

    What a cached prefill must run, whatever the cache: its share of the two
    prompts bounds ``h0_over_predictor_prefill`` from below while each prompt
    runs in a pass of its own (a pass's time grows with its new tokens, plus a
    fixed cost).
    """
    ids = list(backend.tokenizer(backend.chat_prompt(messages))["input_ids"])
    known = max((common_prefix([ids, s]) for s in seen), default=0)
    seen.append(ids)
    return len(ids) - known


def largest_change(a: list[Any], b: list[Any]) -> float:
    """Return the largest change of a label probability between two runs' predictions."""
    return max(
        abs(x[key][label] - y[key][label])
        for x, y in zip(a, b, strict=True)
        for key in ("distribution", "distribution_h0")
        for label in x[key]
    )


async def main() -> None:
    ctx = Context(model="embedded")
    backend = await aresolve(ctx.model, ctx.endpoint())  # untimed: the model loads
    record_prefills(backend)
    configured = prefix_cache_bytes()
    await measured(backend, 0, 1)  # warm-up: the first passes pay one-time costs
    steps = common.sized(8, 4)
    off, off_predictions = await measured(backend, 0, steps)
    print(f"  cache off: {off}", file=sys.stderr)
    on, on_predictions = await measured(backend, configured, steps)
    print(f"  cache on: {on}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "prefix_cache",
            "cache_on": on,
            "cache_off": off,
            "h0_over_predictor_prefill": on["h0_over_predictor_prefill"],
            "h0_token_share": on["h0_token_share"],
            "peak_cache_bytes": backend.prefixes.peak,
            "configured_bytes": configured,
            "same_answers": [p["answer"] for p in on_predictions]
            == [p["answer"] for p in off_predictions],
            "largest_probability_change": largest_change(on_predictions, off_predictions),
            "target": "h0_over_predictor_prefill <= 0.20, peak_cache_bytes <= configured_bytes",
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
