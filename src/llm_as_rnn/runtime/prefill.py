"""Prompts run through a local model, each from its longest cached prefix (blocking; torch thread).

``prefill`` runs a group of prompts in one left-padded pass. Each row starts
from the states of its longest prefix in the model's ``runtime.prefixes``
cache, or from the group's common prefix, run once for all rows when no
cached prefix covers it; its own remaining tokens follow. Every prompt's
states are then stored, so the next call that shares a prefix prefills only
what follows it. Continuous batching (``runtime.decode``) and label scoring
(``runtime.scoring``) both prefill here, so they share one cache.

Rows start from different lengths: a row's cached states are left-padded to
the longest, its new tokens to the longest rest, and the attention mask is 0
on both paddings (positions count the mask's ones, so padding shifts nothing).

Exactness: a row's states are those of its tokens whichever pass computed
them, so a prompt run from a cached prefix sees the same keys and values as
one run whole, up to float rounding: a pass over a different number of
tokens may sum in a different order (``tests/unit/test_prefix_cache.py``
compares answers and label scores with and without the cache).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_as_rnn.runtime.prefixes import Hit, Layers, Prefixes, common_prefix


def forward_params(model: Any) -> set[str]:
    """Return the keyword names of a model's ``forward``."""
    return set(inspect.signature(model.forward).parameters)


def cache_key(model: Any) -> str:
    """Return the keyword of a model's key/value cache (``cache`` in transformers 5)."""
    return "cache" if "cache" in forward_params(model) else "past_key_values"


def last_logits_only(model: Any) -> dict[str, Any]:
    """Return the keyword that makes a forward pass keep only the last position's logits."""
    return {"logits_to_keep": 1} if "logits_to_keep" in forward_params(model) else {}


def plain_cache(cache: Any) -> bool:
    """Return whether a cache is one growing key and value tensor per layer (rows can be cut).

    That is transformers' ``DynamicLayer`` (not its sliding-window or other
    subclasses) or our ``runtime.room.RoomyLayer``, which holds the same.
    """
    layers = list(getattr(cache, "layers", None) or [])
    plain = {"DynamicLayer", "RoomyLayer"}
    return bool(layers) and all(type(layer).__name__ in plain for layer in layers)


@dataclass(frozen=True)
class Prefilled:
    """Prompts run through the model: next-token logits, key/value cache and attention mask."""

    logits: Any
    """``(rows, vocabulary)``: the logits after each prompt's last token."""
    cache: Any
    mask: Any
    """``(rows, cache length)``: 1 for a prompt's tokens, 0 for padding."""


def prefill(
    model: Any, prompts: Sequence[Sequence[int]], pad: int, prefixes: Prefixes
) -> Prefilled:
    """Run ``prompts`` in one pass, each from its longest known prefix; store their states."""
    count = len(prompts)
    # a prompt's last token is always run: its logits choose what comes next
    hits = [prefixes.lookup(p, len(p) - 1) for p in prompts]
    shared = min(common_prefix(prompts), min(len(p) for p in prompts) - 1)
    if count > 1 and shared > min(h.length for h in hits):
        start = prefixes.lookup(prompts[0], shared)
        group = run(model, [prompts[0][:shared]], [start.length], *stacked([start]), pad)
        if not plain_cache(group.cache):  # states that cannot be cut: every row from the group's
            group.cache.batch_repeat_interleave(count)
            return run(
                model, prompts, [shared] * count, group.cache, group.mask.repeat(count, 1), pad
            )
        found = Hit(shared, row_states(group, 0))
        prefixes.add(prompts[0][:shared], found.layers)
        hits = [h if h.length >= shared else found for h in hits]
    out = run(model, prompts, [h.length for h in hits], *stacked(hits), pad)
    if prefixes.capacity and plain_cache(out.cache):
        for i, prompt in enumerate(prompts):
            prefixes.add(prompt, row_states(out, i))
    return out


def run(
    model: Any,
    prompts: Sequence[Sequence[int]],
    starts: Sequence[int],
    cache: Any,
    known: Any,
    pad: int,
) -> Prefilled:
    """Run each prompt after its first ``starts[i]`` tokens, held by ``cache`` (mask ``known``)."""
    import torch

    rests = [list(p[start:]) for p, start in zip(prompts, starts, strict=True)]
    width = max(len(r) for r in rests)
    ids = torch.full((len(rests), width), pad, dtype=torch.long)
    fresh = torch.zeros((len(rests), width), dtype=torch.long)
    for i, rest in enumerate(rests):
        ids[i, width - len(rest) :] = torch.tensor(rest)
        fresh[i, width - len(rest) :] = 1
    mask = torch.cat([known, fresh], dim=1)
    key = cache_key(model)
    with torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, known.shape[1] :],
            use_cache=True,
            **last_logits_only(model),
            **({key: cache} if cache is not None else {}),
        )
    return Prefilled(out.logits[:, -1, :].float(), getattr(out, key), mask)


def stacked(hits: Sequence[Hit]) -> tuple[Any, Any]:
    """Return cached prefixes as one left-padded cache (None if all are empty) and its mask."""
    import torch
    from transformers import DynamicCache

    width = max(h.length for h in hits)
    mask = torch.zeros((len(hits), width), dtype=torch.long)
    for i, hit in enumerate(hits):
        mask[i, width - hit.length :] = 1
    if not width:
        return None, mask
    sample = next(h.layers for h in hits if h.length)

    def rows(layer: int, part: int) -> Any:
        shape = list(sample[layer][part].shape)
        shape[0], shape[-2] = len(hits), width
        batch = sample[layer][part].new_zeros(shape)  # padding: zeros, masked out
        for i, hit in enumerate(hits):
            if hit.length:
                batch[i, :, width - hit.length :] = hit.layers[layer][part][0]
        return batch

    layers = [(rows(i, 0), rows(i, 1)) for i in range(len(sample))]
    return DynamicCache(ddp_cache_data=layers), mask


def row_states(prefilled: Prefilled, row: int) -> Layers:
    """Return one row's states at its prompt's positions (padding left out)."""
    mask = prefilled.mask[row]
    if bool(mask.all()):  # no padding (a lone prompt): views, which the cache copies from
        return tuple(
            (layer.keys[row : row + 1], layer.values[row : row + 1])
            for layer in prefilled.cache.layers
        )
    real = mask.nonzero()[:, 0]
    return tuple(
        (
            layer.keys[row : row + 1].index_select(2, real),
            layer.values[row : row + 1].index_select(2, real),
        )
        for layer in prefilled.cache.layers
    )
