"""Local-model throughput: our backend vs raw ``model.generate`` on the same prompts.

The embedded SmolLM2-135M, greedy decoding, 96 new tokens, the rewrite
prompts of three weather days. ours = ``LocalHFBackend.generate`` (the path a
node takes: ChatHuggingFace, pipeline, lock, worker thread); raw =
``model.generate`` on the same chat-templated ids. Both count generated
tokens with the model's tokenizer. ratio = ours / raw tokens per second.
Target: ratio >= 0.9.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import common
import torch

from llm_as_rnn import Context, get_task, prompts
from llm_as_rnn.context import Sampling
from llm_as_rnn.models import EMBEDDED_GGUF, _load_local, _role_dicts, embedded_dir, resolve
from llm_as_rnn.tasks.weather import weather_observations

NEW_TOKENS = 96


def main() -> None:
    ctx = Context(model="embedded")
    backend = resolve("embedded", ctx)
    model, tokenizer = _load_local(str(embedded_dir()), EMBEDDED_GGUF)
    task = get_task("weather")
    # Rewrite prompts: the model writes at length, so decoding (not prefill) dominates.
    chats = [
        prompts.rewrite_messages(
            task,
            task.initial_memory(),
            task.render_input(o["input"]),
            "sun",
            f"Predicted sun; the truth was {o['target']}: WRONG.",
            256,
            1,
        )
        for o in weather_observations(300, 3)
    ]
    greedy = Sampling(temperature=0.0, max_new_tokens=NEW_TOKENS)

    def ours() -> tuple[int, float]:
        start, tokens = time.perf_counter(), 0
        for chat in chats:
            gen = asyncio.run(backend.generate(chat, greedy, ctx))
            tokens += len(tokenizer.encode(gen.text, add_special_tokens=False))
        return tokens, time.perf_counter() - start

    def raw() -> tuple[int, float]:
        start, tokens = time.perf_counter(), 0
        for chat in chats:
            ids = tokenizer.apply_chat_template(
                _role_dicts(chat), add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False)
            text = tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
            tokens += len(tokenizer.encode(text, add_special_tokens=False))
        return tokens, time.perf_counter() - start

    ours()  # warm both paths once
    raw()

    def measure() -> dict[str, Any]:
        ours_tokens, ours_s = ours()
        raw_tokens, raw_s = raw()
        return {
            "ours_tokens_per_s": round(ours_tokens / ours_s, 2),
            "raw_tokens_per_s": round(raw_tokens / raw_s, 2),
            "ratio": round((ours_tokens / ours_s) / (raw_tokens / raw_s), 4),
            "ours_tokens": ours_tokens,
            "raw_tokens": raw_tokens,
        }

    runs = common.repeat(measure, 3)
    common.emit(
        {
            "benchmark": "hf_throughput",
            "model": backend.name,
            "new_tokens": NEW_TOKENS,
            "ours_tokens_per_s": common.median_of(runs, "ours_tokens_per_s"),
            "raw_tokens_per_s": common.median_of(runs, "raw_tokens_per_s"),
            "ratio": common.median_of(runs, "ratio"),
            "tokens_each": runs[-1]["ours_tokens"],
            "target": "ratio >= 0.9",
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
