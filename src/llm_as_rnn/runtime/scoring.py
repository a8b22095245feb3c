"""Exact label scores on a local causal model: the prompt once, the labels in chunks.

A label's score is the summed log-probability of its tokens after the prompt.
The prompt runs through the model once, as one row, from its longest prefix
in the model's prefix cache (``runtime.prefixes``), keeping only the
log-probabilities of the token after it. The labels then run in batches of
at most ``LLM_AS_RNN_LABEL_CHUNK`` rows (``label_chunk``) that all read the
prompt's one cache (``shared_rows``), and only the log-probabilities of the
labels' own tokens are kept, so peak memory is one chunk's whatever the
number of labels. Scoring every label in one batch kept a copy of the cache
per label: 300 labels, each listed in the prompt, needed more than 24 GB on
the bundled 135M model (README, "Local models: batched generation").

Chunking does not change a score beyond float rounding: each label's row
sees the same prompt cache and only its own tokens (right padding, causal
attention).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_as_rnn.runtime.engine import count_from_env
from llm_as_rnn.runtime.prefill import cache_key, plain_cache, prefill
from llm_as_rnn.runtime.prefixes import Prefixes

LABEL_CHUNK_ENV = "LLM_AS_RNN_LABEL_CHUNK"
DEFAULT_LABEL_CHUNK = 8


def label_chunk() -> int:
    """Return the most labels scored in one pass: ``LLM_AS_RNN_LABEL_CHUNK`` (default 8)."""
    return count_from_env(LABEL_CHUNK_ENV, DEFAULT_LABEL_CHUNK, meaning="labels scored in one pass")


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Split ``items`` into consecutive runs of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]


@dataclass(frozen=True)
class ScoredPrompt:
    """A prompt run through the model once, ready for its continuations to be scored."""

    cache: Any
    """Its key/value cache, one row (never changed: chunks read it through ``shared_rows``)."""
    next_logprobs: Any
    """Log-probabilities over the vocabulary of the token after the prompt."""


def run_prompt(model: Any, ids: Sequence[int], prefixes: Prefixes | None = None) -> ScoredPrompt:
    """Run ``ids`` through the model once (blocking); keep its cache and next-token log-probs.

    Only the part of ``ids`` after their longest prefix in ``prefixes`` is run
    (``runtime.prefill``), and ``ids`` are stored there in turn.
    """
    import torch

    run = prefill(model, [ids], 0, prefixes or Prefixes(0))  # one row: nothing is padded
    return ScoredPrompt(run.cache, torch.log_softmax(run.logits[0], dim=-1))


def score_chunk(model: Any, prompt: ScoredPrompt, labels: Sequence[Sequence[int]]) -> list[float]:
    """Return each label's summed token log-probability after ``prompt`` (blocking).

    The labels run as one right-padded batch of ``len(labels)`` rows on the
    prompt's cache (``shared_rows``). A label's token ``j`` is predicted by the
    prompt's last position (``j = 0``) or by its own token ``j - 1``, so a
    label's last token is never run, and labels of one token need no pass.
    """
    import torch

    width = max(len(ids) for ids in labels)
    # padding comes after every real token of its row, so causal attention never
    # lets a real position see it: any token id will do, and no mask is needed
    tokens = torch.tensor([list(ids) + [0] * (width - len(ids)) for ids in labels])
    real = torch.tensor([[j < len(ids) for j in range(width)] for ids in labels])
    scores = prompt.next_logprobs[tokens[:, 0]]
    if width > 1:
        cache = shared_rows(prompt.cache, len(labels))
        with torch.no_grad():
            out = model(input_ids=tokens[:, :-1], use_cache=True, **{cache_key(model): cache})
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        picked = logp.gather(-1, tokens[:, 1:, None])[..., 0]
        scores = scores + torch.where(real[:, 1:], picked, 0.0).sum(-1)
    return [float(s) for s in scores]


def shared_rows(cache: Any, rows: int) -> Any:
    """Return a one-row cache as ``rows`` rows for one forward pass, leaving ``cache`` unchanged.

    A plain cache (``runtime.prefill.plain_cache``) is shared, not copied: each
    layer hands attention its prompt keys and values broadcast to ``rows`` rows
    with the new tokens' appended, and stores nothing, so a pass holds one
    layer's rows at a time instead of a copy of the whole cache per row (the
    chunk's labels are never continued). Other caches (sliding windows,
    recurrent state) are copied and repeated.
    """
    import torch

    if not plain_cache(cache):
        copied = copy.deepcopy(cache)
        copied.batch_repeat_interleave(rows)
        return copied

    def update(keys: Any, values: Any, layer_idx: int, *_: Any, **__: Any) -> tuple[Any, Any]:
        layer = cache.layers[layer_idx]
        return (
            torch.cat([layer.keys.expand(rows, -1, -1, -1), keys], dim=-2),
            torch.cat([layer.values.expand(rows, -1, -1, -1), values], dim=-2),
        )

    view = copy.copy(cache)  # its layers are the prompt's, read and never written
    view.update = update
    return view
