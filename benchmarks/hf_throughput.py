"""Local-model throughput: our backend vs raw ``model.generate`` on the same prompts.

The embedded SmolLM2-135M, greedy decoding, 96 new tokens, the rewrite
prompts of three weather days, 5 repetitions (a quick run: 24 tokens, one
day, one repetition). ours = ``LocalHFBackend.generate`` (the path a
node takes: the engine, our decoder with a batch of one, the torch thread); raw =
``model.generate`` on the same chat-templated ids, on the same thread (a
second thread running PyTorch would slow both: see ``on_torch_thread``).
Both count generated tokens with the model's tokenizer, and run prompt by
prompt in rotating order. ratio = ours / raw tokens per second.
Target: ratio >= 0.9.

second_thread_ratio: raw generation on a thread of its own while the torch
thread exists, over raw on the torch thread: what one thread for all
PyTorch work saves.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import common
import torch

from llm_as_rnn import Context, Sampling
from llm_as_rnn.runtime.backends import role_dicts
from llm_as_rnn.runtime.local import embedded_dir, load_local, on_torch_thread
from llm_as_rnn.runtime.prefixes import PREFIX_CACHE_ENV
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.spec import EMBEDDED_GGUF

NEW_TOKENS = common.sized(96, 24)
PROMPTS = common.sized(3, 1)


def main() -> None:
    # the same prompts come back at every repetition: a prefix cache would skip their
    # prefill, and what is compared here is decoding
    os.environ[PREFIX_CACHE_ENV] = "0"
    ctx = Context(model="embedded")
    backend = asyncio.run(aresolve(ctx.model, ctx.endpoint()))
    model, tokenizer = load_local(str(embedded_dir()), EMBEDDED_GGUF)
    chats = common.rewrite_prompts(list(range(300, 300 + PROMPTS)))
    greedy = Sampling(temperature=0.0, max_new_tokens=NEW_TOKENS)

    def ours(chat: list[Any]) -> tuple[int, float]:
        start = time.perf_counter()
        gen = asyncio.run(backend.generate(chat, greedy, ctx.call_policy()))
        elapsed = time.perf_counter() - start
        return len(tokenizer.encode(gen.text, add_special_tokens=False)), elapsed

    def generate(chat: list[Any]) -> str:
        ids = tokenizer.apply_chat_template(
            role_dicts(chat), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        return str(tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True))

    def raw(chat: list[Any]) -> tuple[int, float]:
        start = time.perf_counter()
        text = asyncio.run(on_torch_thread(generate, chat))
        elapsed = time.perf_counter() - start
        return len(tokenizer.encode(text, add_special_tokens=False)), elapsed

    def raw_elsewhere(chat: list[Any]) -> tuple[int, float]:
        """Raw generation on a thread of its own, while the torch thread exists."""
        out: list[str] = []
        start = time.perf_counter()
        worker = threading.Thread(target=lambda: out.append(generate(chat)))
        worker.start()
        worker.join()
        elapsed = time.perf_counter() - start
        return len(tokenizer.encode(out[0], add_special_tokens=False)), elapsed

    paths = {"ours": ours, "raw": raw, "second_thread": raw_elsewhere}
    for path in paths.values():  # warm every path once
        path(chats[0])
    turn = iter(range(1_000_000))

    def measure() -> dict[str, Any]:
        # Interleaved prompt by prompt, in rotating order: this machine's speed
        # drifts over seconds, and every path must see the same drift.
        totals = {name: [0, 0.0] for name in paths}
        names = list(paths)
        for chat in chats:
            shift = next(turn) % len(names)
            for name in names[shift:] + names[:shift]:
                tokens, seconds = paths[name](chat)
                totals[name][0] += tokens
                totals[name][1] += seconds
        speed = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
        return {
            "ours_tokens_per_s": round(speed["ours"], 2),
            "raw_tokens_per_s": round(speed["raw"], 2),
            "ratio": round(speed["ours"] / speed["raw"], 4),
            "second_thread_tokens_per_s": round(speed["second_thread"], 2),
            "second_thread_ratio": round(speed["second_thread"] / speed["raw"], 4),
            "ours_tokens": totals["ours"][0],
            "raw_tokens": totals["raw"][0],
        }

    runs = common.repeat(measure, common.sized(5, 1))
    common.emit(
        {
            "benchmark": "hf_throughput",
            "model": backend.name,
            "new_tokens": NEW_TOKENS,
            "ours_tokens_per_s": common.median_of(runs, "ours_tokens_per_s"),
            "raw_tokens_per_s": common.median_of(runs, "raw_tokens_per_s"),
            "ratio": common.median_of(runs, "ratio"),
            "second_thread_ratio": common.median_of(runs, "second_thread_ratio"),
            "tokens_each": runs[-1]["ours_tokens"],
            "target": "ratio >= 0.9",
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
