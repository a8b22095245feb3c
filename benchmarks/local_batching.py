"""Batched local generation: the same calls one at a time vs generated together.

The bundled SmolLM2-135M, one rewrite prompt from each of 8 weather sequences
(different days, so different prompts), greedy, 48 new tokens each. For n =
2, 4 and 8 concurrent sequences, their n calls go through
``LocalHFBackend.generate`` (the path a node takes) one at a time
(``LLM_AS_RNN_LOCAL_BATCH=1``) and then all at once (batch up to 8), in
alternating order, 3 repetitions (a quick run: 24 new tokens, n = 8 only,
one repetition). Reported per n: aggregate generated tokens per second of
each, and ``batched_over_serial``. Target: >= 3.0 at n = 8.
``same_answers``: batched answers equal to the one-at-a-time ones. Beside
it, the floor: the model alone (``transformers`` ``generate``, nothing of
ours) on the same 8 prompts, one at a time vs in one padded batch
(``floor_batched_over_serial``): what batching gains with the frameworks
alone, on this machine's CPU in the same run.

Then the cost of structured memory updates (issue 24): the same 8 calls
batched, constrained to the weather task's full-mode section skeleton
(``runtime.structure.skeleton``, one grammar state per row, 96 new tokens at
most), and free with each row capped at the length its constrained answer
had, in alternating order, 3 repetitions (a quick run too). Equal lengths
make the two runs the same work (the same prefill, the same rows in every
pass) but for the grammar: its mask of each row and its following of the
chosen token (the grammar's tokenizer view is built once before, uncounted).
``constrained_over_free``: their generated tokens per second, constrained
over free. Target: >= 0.9. (A constrained answer ends when its skeleton is
whole, well before a free one reaches the cap; a ratio of the two at unequal
lengths, ``unequal_lengths_ratio``, measures how much shorter the answers
are: the fixed prefill is spread over fewer tokens. It is reported, not a
target, and not in a quick run.)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

import common

from llm_as_rnn import Context, Sampling, get_task
from llm_as_rnn.runtime import structure
from llm_as_rnn.runtime.engine import BATCH_ENV
from llm_as_rnn.runtime.local import on_torch_thread
from llm_as_rnn.runtime.prefixes import PREFIX_CACHE_ENV
from llm_as_rnn.runtime.resolve import aresolve

NEW_TOKENS = common.sized(48, 24)
STRUCTURED_TOKENS = 96
"""The cap of the structured comparison: as ``make demo``'s (at 48 no skeleton fits)."""
SIZES = (2, 4, 8) if not common.quick() else (8,)
REPETITIONS = common.sized(3, 1)
CONSTRAINED_REPETITIONS = 3
"""The constrained comparison's, in a quick run too: a few seconds each, and one
repetition ranged from 0.81 to 1.09 between two quick runs of the same code."""


def raw_batch_gain(backend: Any, chats: list[Any]) -> dict[str, Any]:
    """Return the model alone's batch gain: ``transformers`` ``generate`` on the 8 prompts.

    The floor beside ``batched_over_serial``: the same prompts, greedy, exactly
    ``NEW_TOKENS`` tokens each, one ``generate`` call at a time vs one left-padded
    call for all 8, alternating, ``REPETITIONS`` times; nothing of ours runs.
    """
    import torch

    tokenizer, model = backend.tokenizer, backend.model
    texts = [backend.chat_prompt(c) for c in chats]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    fixed = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, "do_sample": False}
    pad = {"pad_token_id": tokenizer.pad_token_id}

    def run(group: list[str]) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(**tokenizer(group, return_tensors="pt", padding=True), **fixed, **pad)
        return time.perf_counter() - start

    try:
        gains = []
        for rep in range(REPETITIONS):
            for batched in (True, False) if rep % 2 else (False, True):
                if batched:
                    together = run(texts)
                else:
                    alone = sum(run([t]) for t in texts)
            gains.append(alone / together)
    finally:
        tokenizer.padding_side = side
    return {
        "batched_over_serial": round(statistics.median(gains), 3),
        "repetitions": [round(g, 3) for g in gains],
        "rows": len(texts),
    }


async def main() -> None:
    # the same prompts come back at every repetition: a prefix cache would skip their
    # prefill, and what is compared here is decoding
    os.environ[PREFIX_CACHE_ENV] = "0"
    ctx = Context(model="embedded")
    backend = await aresolve(ctx.model, ctx.endpoint())
    chats = common.rewrite_prompts(list(range(0, 8 * 45, 45)))
    greedy = Sampling(temperature=0.0, max_new_tokens=NEW_TOKENS)
    policy = ctx.call_policy()

    async def serial(n: int) -> tuple[int, float, list[str]]:
        os.environ[BATCH_ENV] = "1"
        start = time.perf_counter()
        gens = [await backend.generate(c, greedy, policy) for c in chats[:n]]
        elapsed = time.perf_counter() - start
        return sum(g.completion_tokens for g in gens), elapsed, [g.text for g in gens]

    async def batched(n: int) -> tuple[int, float, list[str]]:
        os.environ[BATCH_ENV] = "8"
        start = time.perf_counter()
        gens = await asyncio.gather(*(backend.generate(c, greedy, policy) for c in chats[:n]))
        elapsed = time.perf_counter() - start
        return sum(g.completion_tokens for g in gens), elapsed, [g.text for g in gens]

    await batched(2)  # warm both paths once
    await serial(1)
    results: dict[str, Any] = {}
    for n in SIZES:
        ratios, serial_speed, batched_speed, same = [], [], [], True
        for rep in range(REPETITIONS):
            order = (serial, batched) if rep % 2 == 0 else (batched, serial)
            runs = {f.__name__: await f(n) for f in order}
            s_tok, s_sec, s_text = runs["serial"]
            b_tok, b_sec, b_text = runs["batched"]
            serial_speed.append(s_tok / s_sec)
            batched_speed.append(b_tok / b_sec)
            ratios.append((b_tok / b_sec) / (s_tok / s_sec))
            same = same and s_text == b_text
            print(f"  n={n} rep {rep + 1}: ratio {ratios[-1]:.2f}", file=sys.stderr)
        results[str(n)] = {
            "serial_tokens_per_s": round(statistics.median(serial_speed), 2),
            "batched_tokens_per_s": round(statistics.median(batched_speed), 2),
            "batched_over_serial": round(statistics.median(ratios), 3),
            "same_answers": same,
        }
    floor = await on_torch_thread(raw_batch_gain, backend, chats)
    print(f"  floor (the model alone): {floor['batched_over_serial']:.2f}", file=sys.stderr)
    skeleton = structure.skeleton(get_task("weather").sections, STRUCTURED_TOKENS)
    assert skeleton is not None
    os.environ[BATCH_ENV] = "8"

    async def constrained(caps: list[int] | None) -> tuple[list[int], float]:
        """Run the 8 calls batched: constrained (no caps) or free with per-row caps."""
        shape = None if caps else skeleton
        samplings = [
            Sampling(temperature=0.0, max_new_tokens=c) for c in caps or [STRUCTURED_TOKENS] * 8
        ]
        start = time.perf_counter()
        gens = await asyncio.gather(
            *(backend.generate(c, s, policy, shape) for c, s in zip(chats, samplings, strict=True))
        )
        return [g.completion_tokens for g in gens], time.perf_counter() - start

    await on_torch_thread(backend.constraint, skeleton)  # the tokenizer's view, uncounted
    lengths, seconds = await constrained(None)
    unequal = None  # a quick run leaves out this reported (not targeted) ratio
    if not common.quick():
        capped_tokens, capped_seconds = await constrained([STRUCTURED_TOKENS] * 8)
        unequal = round((sum(lengths) / seconds) / (sum(capped_tokens) / capped_seconds), 3)
    speeds: dict[bool, list[float]] = {True: [], False: []}
    shares = []
    for rep in range(CONSTRAINED_REPETITIONS):
        for free in (True, False) if rep % 2 == 0 else (False, True):
            tokens, seconds = await constrained(lengths if free else None)
            speeds[free].append(sum(tokens) / seconds)
        shares.append(speeds[False][-1] / speeds[True][-1])
        print(f"  constrained rep {rep + 1}: ratio {shares[-1]:.2f}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "local_batching",
            "free_tokens_per_s": round(statistics.median(speeds[True]), 2),
            "constrained_tokens_per_s": round(statistics.median(speeds[False]), 2),
            "constrained_over_free": round(statistics.median(shares), 3),
            "constrained_lengths": lengths,
            "unequal_lengths_ratio": unequal,
            "model": backend.name,
            "new_tokens": NEW_TOKENS,
            "repetitions": REPETITIONS,
            "constrained_repetitions": CONSTRAINED_REPETITIONS,
            "by_sequences": results,
            "batched_over_serial": results["8"]["batched_over_serial"],
            "floor": floor,
            "floor_batched_over_serial": floor["batched_over_serial"],
            "same_answers": all(r["same_answers"] for r in results.values()),
            "target": "batched_over_serial >= 3.0 at 8 sequences; constrained_over_free >= 0.9",
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
