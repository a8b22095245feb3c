"""Batched decoding for local causal language models (blocking; run on the torch thread).

``decode`` generates for several prompts at once: left-padded, one forward
pass per new token for the whole batch, a key/value cache, each row stopping
at an end token or its cap. The prompts' longest common token prefix is run
once and its cache shared by every row (the key/value reuse a shared prompt
prefix allows).

Reproducibility: a sampled row draws from its own ``torch.Generator``, seeded
from the row's seed, so its draws do not depend on which other prompts share
the batch. What can differ is arithmetic: a batched, padded forward pass may
round differently from a single one, so a near-tie between two tokens can go
the other way (greedy or sampled). ``tests/integration/test_embedded.py``
checks batched greedy answers against one-at-a-time ones on the bundled
model.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DecodeSettings:
    """Generation settings of one row (rows of a batch may differ)."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0

    @property
    def sampled(self) -> bool:
        """Whether tokens are drawn (else greedy)."""
        return self.temperature > 0


@dataclass(frozen=True)
class Decoded:
    """One row's answer: generated token ids and whether it hit its cap."""

    tokens: list[int]
    cut_off: bool


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Return the length of the longest token prefix every row shares."""
    if not rows:
        return 0
    shortest = min(len(r) for r in rows)
    for i in range(shortest):
        token = rows[0][i]
        if any(r[i] != token for r in rows[1:]):
            return i
    return shortest


def top_p_filter(probs: Any, top_p: float) -> Any:
    """Zero the tail of a probability vector outside the nucleus ``top_p`` (renormalised)."""
    import torch

    if top_p >= 1.0:
        return probs
    ordered, order = torch.sort(probs, descending=True)
    before = torch.cumsum(ordered, dim=-1) - ordered
    ordered = torch.where(before < top_p, ordered, torch.zeros_like(ordered))
    kept = torch.zeros_like(probs).scatter(-1, order, ordered)
    return kept / kept.sum()


def forward_params(model: Any) -> set[str]:
    """Return the keyword names of a model's ``forward``."""
    return set(inspect.signature(model.forward).parameters)


def cache_key(model: Any) -> str:
    """Return the keyword of a model's key/value cache (``cache`` in transformers 5)."""
    return "cache" if "cache" in forward_params(model) else "past_key_values"


def prefix_cache(model: Any, ids: Sequence[int], rows: int, **kwargs: Any) -> tuple[Any, Any]:
    """Run ``ids`` through the model once; return its logits and its key/value cache for ``rows``.

    The cache is repeated ``rows`` times along the batch, so every row of the
    next forward pass continues from the same prefix.
    """
    import torch

    out = model(input_ids=torch.tensor([list(ids)]), use_cache=True, **kwargs)
    cache = getattr(out, cache_key(model))
    if rows > 1:
        cache.batch_repeat_interleave(rows)
    return out.logits, cache


def decode(
    model: Any,
    prompts: Sequence[Sequence[int]],
    settings: Sequence[DecodeSettings],
    *,
    end_tokens: set[int],
    pad: int,
    seeds: Sequence[int | None] | None = None,
) -> list[Decoded]:
    """Generate for every prompt in one batch; return each row's tokens.

    ``settings`` holds one entry per prompt: each row has its own cap,
    temperature and top-p, so calls of different roles share a batch.
    """
    import torch

    rows = len(prompts)
    key = cache_key(model)
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in forward_params(model) else {}
    shared = min(common_prefix(prompts), min(len(p) for p in prompts) - 1)
    width = max(len(p) for p in prompts) - shared
    ids = torch.full((rows, width), pad, dtype=torch.long)
    mask = torch.zeros((rows, shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for i, prompt in enumerate(prompts):
        rest = list(prompt[shared:])
        if rest:
            ids[i, width - len(rest) :] = torch.tensor(rest)
            mask[i, shared + width - len(rest) :] = 1
    draws = [
        None if seed is None or not row.sampled else torch.Generator().manual_seed(seed)
        for seed, row in zip(seeds or [None] * rows, settings, strict=True)
    ]
    tokens: list[list[int]] = [[] for _ in range(rows)]
    done = [row.max_new_tokens <= 0 for row in settings]
    with torch.no_grad():
        cache = None
        if shared:
            _, cache = prefix_cache(model, prompts[0][:shared], rows, **last_only)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        step_input = ids
        for _ in range(max(row.max_new_tokens for row in settings)):
            if all(done):
                break
            out = model(
                input_ids=step_input,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **last_only,
                **({key: cache} if cache is not None else {}),
            )
            cache = getattr(out, key)
            logits = out.logits[:, -1, :].float()
            chosen = pick(logits, settings, draws)
            for i in range(rows):
                if not done[i]:
                    tokens[i].append(chosen[i])
                    done[i] = (
                        chosen[i] in end_tokens or len(tokens[i]) >= settings[i].max_new_tokens
                    )
            if all(done):
                break
            step_input = torch.tensor([[pad if done[i] else chosen[i]] for i in range(rows)])
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=torch.long)], dim=1)
            positions = positions[:, -1:] + 1
    return [
        Decoded(
            tokens=[t for t in row if t not in end_tokens],
            cut_off=not (row and row[-1] in end_tokens),
        )
        for row in tokens
    ]


def pick(logits: Any, settings: Sequence[DecodeSettings], draws: Sequence[Any]) -> list[int]:
    """Choose each row's next token: greedy, or drawn with the row's own generator."""
    import torch

    chosen = [int(t) for t in logits.argmax(dim=-1)]
    for i, (row, generator) in enumerate(zip(settings, draws, strict=True)):
        if row.sampled:
            probs = top_p_filter(torch.softmax(logits[i] / row.temperature, -1), row.top_p)
            chosen[i] = int(torch.multinomial(probs, 1, generator=generator))
    return chosen
