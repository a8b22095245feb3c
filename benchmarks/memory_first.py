"""Memory-first prompts: what they share across a step's calls, and what they cost a small model.

Shared prefix (tokenizer only): one weather step's three calls (predict,
critique, rewrite) with a 200-token memory, chat-templated for the bundled
model. For each order, the tokens the critique and rewrite prompts share
with the predict prompt: what a server with automatic prefix caching (vLLM,
SGLang) computes once instead of three times. ``reusable_share``: shared
tokens over all prompt tokens of the three calls.

Cost to the small model: the bundled SmolLM2-135M, weather, choice answers,
2 sequences x 5 steps (a quick run: 1 x 1), budget 256, 64 new tokens per call, seed 4, method
rnn, once per order: log-loss and accuracy of its predictions, the share of
steps whose memory changed and whose rewrite was rejected. A 135M model on
10 steps: this says whether the order breaks the model's calls, not which
order predicts better.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from typing import Any

import common

from llm_as_rnn import Context, get_task
from llm_as_rnn.core import prompts
from llm_as_rnn.data import weather
from llm_as_rnn.runtime.resolve import aresolve

ORDERS = ("role-first", "memory-first")
SEQUENCES, STEPS = common.sized(2, 1), common.sized(5, 1)


def shared_prefix(tokenizer: Any, backend: Any) -> dict[str, Any]:
    task = get_task("weather")
    memory = task.initial_memory().replace(
        "None yet.",
        "\n".join(
            f"- Day pattern {i}: rain follows a falling barometer and a south wind."
            for i in range(12)
        ),
        1,
    )
    o = weather.window(200, 1)[0]
    obs = task.render_input(o["input"])
    calls = [
        prompts.predict_messages(task, memory, obs, 5),
        prompts.critique_messages(task, memory, obs, "dry", str(o["target"]), "WRONG"),
        prompts.rewrite_messages(task, memory, obs, "dry", "Wrong: it rained.", 256, 5),
    ]
    out: dict[str, Any] = {"memory_tokens": backend.count_tokens(memory)}
    for order in ORDERS:
        ids = [
            tokenizer(
                backend.chat_prompt(prompts.ordered(c, order)), add_special_tokens=False
            ).input_ids
            for c in calls
        ]
        shared = []
        for other in ids[1:]:
            n = 0
            while n < min(len(ids[0]), len(other)) and ids[0][n] == other[n]:
                n += 1
            shared.append(n)
        out[order] = {
            "prompt_tokens": [len(i) for i in ids],
            "shared_with_predict": shared,
            "reusable_share": round(sum(shared) / sum(len(i) for i in ids), 3),
        }
    return out


async def cost(order: str) -> dict[str, Any]:
    run = await common.evaluate(
        **common.EMBEDDED_WEATHER,
        sequences=SEQUENCES,
        steps=STEPS,
        max_new_tokens=64,
        answer_mode="choice",
        prompt_order=order,
        concurrency=2,
    )
    steps = [s for s in run.steps if s["method"] == "rnn"]
    return {
        "log_loss": round(statistics.mean(s["metrics"]["log_loss"] for s in steps), 3),
        "accuracy": round(statistics.mean(s["metrics"]["accuracy"] for s in steps), 3),
        "invalid_rate": round(sum(not s["valid"] for s in steps) / len(steps), 3),
        "changed_share": round(
            sum(s["memory"] != s["memory_before"] for s in steps) / len(steps), 3
        ),
        "rejected_share": round(sum(bool(s["rewrite_rejected"]) for s in steps) / len(steps), 3),
    }


async def main() -> None:
    ctx = Context(model="embedded")
    backend = await aresolve(ctx.model, ctx.endpoint())
    prefix = shared_prefix(backend.tokenizer, backend)
    print(f"  shared prefix: {prefix}", file=sys.stderr)
    costs = {}
    for order in ORDERS:
        costs[order] = await cost(order)
        print(f"  {order}: {costs[order]}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "memory_first",
            "sequences": SEQUENCES,
            "steps": STEPS,
            "shared_prefix": prefix,
            "cost": costs,
            "log_loss_change": round(
                costs["memory-first"]["log_loss"] - costs["role-first"]["log_loss"], 3
            ),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
