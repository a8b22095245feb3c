"""Cost of constrained decoding per token: the grammar mask of one decoding step.

A byte-level BPE tokenizer of 49,152 tokens (the bundled SmolLM2's size) is
trained here on random words (no model is loaded or run). For a delta
operations grammar and a full-mode section skeleton, each step computes the
row's mask (``runtime.grammar.Constraint.mask``: llguidance's bitmask,
unpacked, applied to a logits vector) and follows a token the grammar
allows, to the grammar's end; repeated over 20 answers (5 in a quick run). mask_ms =
median milliseconds per token; first_mask_ms = the first step of an answer
(the grammar's start, the most expensive).
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import common
import torch
from transformers import PreTrainedTokenizerFast

from llm_as_rnn.runtime.grammar import Constraint, llg_tokenizer
from llm_as_rnn.runtime.structure import Structure, operations, skeleton
from llm_as_rnn.testing import byte_level_tokenizer

VOCAB, ANSWERS = 49152, common.sized(20, 5)
SECTIONS = ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB"]


def tokenizer() -> PreTrainedTokenizerFast:
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 12))) for _ in range(120_000)]
    corpus = [" ".join(words[i : i + 50]) for i in range(0, len(words), 50)]
    fast: PreTrainedTokenizerFast = byte_level_tokenizer(corpus, VOCAB)
    return fast


def measure(llg: object, structure: Structure, vocab: int, eos: int) -> dict[str, float]:
    rng = random.Random(1)
    steps, firsts, lengths = [], [], []
    for _ in range(ANSWERS):
        constraint = Constraint(llg, structure, {eos})
        count = 0
        while not constraint.complete:
            logits = torch.zeros(vocab)
            start = time.perf_counter()
            constraint.mask(logits)
            took = (time.perf_counter() - start) * 1000
            (firsts if count == 0 else steps).append(took)
            allowed = torch.nonzero(logits == 0).flatten().tolist()
            token = rng.choice(allowed)
            count += 1
            if token == eos:
                break
            constraint.advance(token)
        lengths.append(count)
    return {
        "mask_ms": round(statistics.median(steps), 3),
        "mask_ms_p90": round(statistics.quantiles(steps, n=10)[-1], 3),
        "first_mask_ms": round(statistics.median(firsts), 3),
        "tokens_per_answer": round(statistics.mean(lengths), 1),
    }


def main() -> None:
    torch.set_num_threads(1)
    fast = tokenizer()
    vocab, eos = len(fast), fast.eos_token_id
    start = time.perf_counter()
    llg = llg_tokenizer(fast, {eos})
    setup_s = time.perf_counter() - start
    delta = operations(SECTIONS, list(range(1, 13)), 256)
    full = skeleton(SECTIONS, 384)
    assert delta is not None
    assert full is not None
    result = {"delta": measure(llg, delta, vocab, eos), "full": measure(llg, full, vocab, eos)}
    print(f"  vocab {vocab}: {result}", file=sys.stderr)
    common.emit(
        {
            "benchmark": "grammar_mask",
            "vocab": vocab,
            "answers": ANSWERS,
            "tokenizer_setup_s": round(setup_s, 2),
        }
        | result
    )


if __name__ == "__main__":
    main()
