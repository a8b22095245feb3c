"""Batched decoding for local causal language models (blocking; run on the torch thread).

A ``RunningBatch`` decodes several prompts at once: one forward pass per new
token for every row, a key/value cache, each row with its own cap,
temperature and top-p. Rows join between two passes (their prompts are run
left-padded, the newcomers' longest common prefix once, and their cache is
merged into the running one) and leave as soon as they end (their rows are
cut out of the cache), so a short answer never waits for a long one:
continuous batching. ``decode`` runs a fixed set of prompts to the end.
Newcomers' prompts start from the longest prefix the model's cache of
earlier prompts holds (``runtime.prefill``, ``runtime.prefixes``).

Reproducibility: a sampled row draws from its own ``torch.Generator``, seeded
from the row's seed, so its draws do not depend on which other prompts share
the batch. What can differ is arithmetic: a batched, padded forward pass may
round differently from a single one, so a near-tie between two tokens can go
the other way (greedy or sampled). ``tests/integration/test_embedded.py``
checks batched greedy answers against one-at-a-time ones on the bundled
model.

A row may carry a grammar state (``runtime.grammar.Constraint``): it masks
the row's logits before its token is chosen, follows the chosen token, and
the row ends when its grammar is complete. Rows with and without share a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_as_rnn.runtime.grammar import mask_rows
from llm_as_rnn.runtime.prefill import cache_key, last_logits_only, plain_cache, prefill
from llm_as_rnn.runtime.prefixes import Prefixes

if TYPE_CHECKING:
    from llm_as_rnn.runtime.grammar import Constraint


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


NUCLEUS_LOOKS = (64, 1024)
"""How many of the most likely tokens ``top_p_filter`` looks at, before the whole vocabulary."""


def top_p_filter(probs: Any, top_p: float) -> Any:
    """Zero the tail of a probability vector outside the nucleus ``top_p`` (renormalised).

    The nucleus is the most likely tokens, in order, whose probability mass
    before them is under ``top_p``. It is looked for among the 64 most likely
    tokens first, then 1024, then the whole vocabulary: once the mass of those
    looked at reaches ``top_p``, every token after them is outside. Sorting
    the whole vocabulary every token (49152 on the bundled model) took 4.4 ms
    a row, the first look 0.2 ms; a flat distribution, whose nucleus is most
    of the vocabulary, pays the two looks on top of the sort.
    ``tests/unit/test_running_batch.py`` checks the result equals the whole
    sort's; among exactly equal probabilities at the nucleus's edge, which
    ones are kept may differ from a sort's order (either set is a nucleus).
    """
    import torch

    if top_p >= 1.0:
        return probs
    size = probs.shape[-1]
    for look in [*(n for n in NUCLEUS_LOOKS if n < size), size]:
        ordered, order = torch.topk(probs, look)
        total = torch.cumsum(ordered, dim=-1)
        if float(total[-1]) >= top_p:
            break
    before = total - ordered
    ordered = torch.where(before < top_p, ordered, torch.zeros_like(ordered))
    kept = torch.zeros_like(probs).scatter(-1, order, ordered)
    return kept / kept.sum()


@dataclass(eq=False)
class Row:
    """One prompt being decoded; ``tokens`` grows by one per pass until it is done."""

    prompt: list[int]
    settings: DecodeSettings
    seed: int | None = None
    tokens: list[int] = field(default_factory=list)
    ended: bool = False
    """Whether the last token is an end token."""
    generator: Any = field(default=None, repr=False)
    constraint: Constraint | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        """Whether the row's answer is whole: an end token, or its grammar complete."""
        return self.ended or (self.constraint is not None and self.constraint.complete)

    @property
    def done(self) -> bool:
        """Whether the row is complete or has reached its cap."""
        return self.complete or len(self.tokens) >= self.settings.max_new_tokens

    def result(self) -> Decoded:
        """Return the row's answer (end tokens left out)."""
        tokens = self.tokens[:-1] if self.ended else self.tokens
        return Decoded(tokens=list(tokens), cut_off=not self.complete)


class RunningBatch:
    """Rows decoding together: they join between passes and leave when done.

    Every row's next input is its last chosen token; the cache holds the rest.
    Positions come from the attention mask (left padding has mask 0), so rows
    of any length share one pass. Rows join a non-empty batch only when the
    model's cache can be merged (``plain_cache``); otherwise they wait until
    it empties.
    """

    def __init__(
        self, model: Any, end_tokens: set[int], pad: int, prefixes: Prefixes | None = None
    ) -> None:
        self.model = model
        self.prefixes = prefixes or Prefixes(0)
        self.end_tokens = end_tokens
        self.pad = pad
        self.key = cache_key(model)
        self.last_only = last_logits_only(model)
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: Any = None  # (rows, cache length): 1 for real tokens
        self.mergeable = True

    def can_admit(self) -> bool:
        """Whether new rows may join now."""
        return not self.rows or self.mergeable

    def admit(self, rows: Sequence[Row]) -> list[Row]:
        """Run the new rows' prompts, choose their first tokens and add them; return rows done."""
        import torch

        for row in rows:
            if row.generator is None and row.seed is not None and row.settings.sampled:
                row.generator = torch.Generator().manual_seed(row.seed)
        finished = [r for r in rows if r.settings.max_new_tokens <= 0]
        rows = [r for r in rows if r.settings.max_new_tokens > 0]
        if not rows:
            return finished
        run = prefill(self.model, [r.prompt for r in rows], self.pad, self.prefixes)
        self.choose(rows, run.logits)
        if self.rows:
            self.merge(run.cache, run.mask)
        else:
            from llm_as_rnn.runtime.room import roomy

            self.cache, self.mask = run.cache, run.mask
            self.mergeable = plain_cache(run.cache)
            if self.mergeable:  # each pass then appends its token in place (``runtime.room``)
                roomy(self.cache)
        self.rows += rows
        return finished + self.retire()

    def step(self) -> list[Row]:
        """Run one pass for every row (its last token in); return the rows now done."""
        import torch

        if not self.rows:
            return []
        count = len(self.rows)
        self.mask = torch.cat([self.mask, torch.ones((count, 1), dtype=torch.long)], dim=1)
        with torch.no_grad():
            out = self.model(
                input_ids=torch.tensor([[r.tokens[-1]] for r in self.rows]),
                attention_mask=self.mask,
                position_ids=self.mask.sum(-1, keepdim=True) - 1,
                use_cache=True,
                **self.last_only,
                **{self.key: self.cache},
            )
        self.cache = getattr(out, self.key)
        self.choose(self.rows, out.logits[:, -1, :].float())
        return self.retire()

    def run_to_end(self) -> None:
        """Run passes until every row is done."""
        while self.rows:
            self.step()

    def remove(self, rows: Sequence[Row]) -> None:
        """Drop rows whose callers no longer wait."""
        gone = {id(r) for r in rows}
        self.keep([i for i, r in enumerate(self.rows) if id(r) not in gone])

    def choose(self, rows: Sequence[Row], logits: Any) -> None:
        """Append each row's next token (greedy, or drawn with the row's own generator).

        A constrained row chooses among the tokens its grammar allows.
        """
        mask_rows(logits, [r.constraint for r in rows])
        chosen = pick(logits, [r.settings for r in rows], [r.generator for r in rows])
        for row, token in zip(rows, chosen, strict=True):
            row.tokens.append(token)
            row.ended = token in self.end_tokens
            if row.constraint is not None and not row.ended:
                row.constraint.advance(token)

    def merge(self, cache: Any, mask: Any) -> None:
        """Append new rows' cache and mask below the running ones, left-padding the shorter."""
        import torch

        length = max(self.mask.shape[1], mask.shape[1])

        def padded(tensor: Any, dim: int) -> Any:
            missing = length - tensor.shape[dim]
            if not missing:
                return tensor
            shape = list(tensor.shape)
            shape[dim] = missing
            return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([padded(old.keys, 2), padded(new.keys, 2)], dim=0)
            old.values = torch.cat([padded(old.values, 2), padded(new.values, 2)], dim=0)
        self.mask = torch.cat([padded(self.mask, 1), padded(mask, 1)], dim=0)

    def retire(self) -> list[Row]:
        """Remove the rows that are done and return them."""
        finished = [r for r in self.rows if r.done]
        if finished:
            self.keep([i for i, r in enumerate(self.rows) if not r.done])
        return finished

    def keep(self, indices: list[int]) -> None:
        """Keep only the rows at ``indices``, with their cache; trim padding no row needs."""
        import torch

        if len(indices) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in indices]
        if not self.rows:
            self.cache = self.mask = None
            return
        self.cache.batch_select_indices(torch.tensor(indices))
        self.mask = self.mask[indices]
        used = self.mask.sum(0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first and self.mergeable:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, first:, :]
                layer.values = layer.values[:, :, first:, :]


def decode(
    model: Any,
    prompts: Sequence[Sequence[int]],
    settings: Sequence[DecodeSettings],
    *,
    end_tokens: set[int],
    pad: int,
    seeds: Sequence[int | None] | None = None,
) -> list[Decoded]:
    """Generate for every prompt in one batch; return each row's answer.

    ``settings`` holds one entry per prompt: each row has its own cap,
    temperature and top-p.
    """
    rows = [
        Row(list(p), s, seed)
        for p, s, seed in zip(prompts, settings, seeds or [None] * len(prompts), strict=True)
    ]
    batch = RunningBatch(model, end_tokens, pad)
    batch.admit(rows)
    batch.run_to_end()
    return [r.result() for r in rows]


def pick(logits: Any, settings: Sequence[DecodeSettings], draws: Sequence[Any]) -> list[int]:
    """Choose each row's next token: greedy, or drawn with the row's own generator."""
    import torch

    chosen = [int(t) for t in logits.argmax(dim=-1)]
    for i, (row, generator) in enumerate(zip(settings, draws, strict=True)):
        if row.sampled:
            probs = top_p_filter(torch.softmax(logits[i] / row.temperature, -1), row.top_p)
            chosen[i] = int(torch.multinomial(probs, 1, generator=generator))
    return chosen
