"""Constrained decoding for local models: one grammar state per decoding row (llguidance).

Why llguidance (PyPI ``llguidance``) and not xgrammar: both are field
standard (vLLM, SGLang, llama.cpp use them) and take Lark-style grammars
with regex terminals, but xgrammar's wheel requires ``torch``, ``triton`` and
``apache-tvm-ffi`` (a GPU compiler stack pulled onto a CPU install), while
llguidance is one self-contained Rust wheel with no dependencies. Its Lark
dialect also bounds a rule in tokens (``rule[max_tokens=N]``), which is what
makes a structure's worst case a token count (``runtime.structure``).

Cost: ``benchmarks/grammar_mask.py`` times the mask of one decoding step on
a 49k-token vocabulary.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from llm_as_rnn.runtime.structure import Structure, lark


def llg_tokenizer(tokenizer: Any, end_tokens: Iterable[int]) -> Any:
    """Return llguidance's view of a Hugging Face fast tokenizer (about a second: cache it)."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, eos_token=sorted(end_tokens))


COMPILED = 256
"""Compiled grammars kept: one per distinct structure, and a delta structure changes with
its memory's note ids every step, so unbounded they would grow for the process's life.
256 holds every row of a large running batch (each row's memory its own ids) and the
few structures that repeat (full, compress, judge); a miss costs a compile (milliseconds)."""


@functools.lru_cache(maxsize=COMPILED)
def compiled(structure: Structure) -> str:
    """Return the structure's grammar in llguidance's serialised form."""
    import llguidance

    return str(llguidance.LLMatcher.grammar_from_lark(lark(structure)))


class Constraint:
    """One row's grammar state: it masks the row's logits and follows its chosen tokens."""

    def __init__(self, llg: Any, structure: Structure, end_tokens: Iterable[int]) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(llg, compiled(structure), log_level=0)
        if self.matcher.is_error():
            raise ValueError(f"grammar of {structure!r:.80}: {self.matcher.get_error()}")
        self.end_tokens = sorted(end_tokens)
        self.vocab = int(llg.vocab_size)
        """The grammar's vocabulary size (a model's logits may be padded beyond it)."""

    @property
    def complete(self) -> bool:
        """Whether the answer is complete: the grammar takes no further token."""
        return bool(self.matcher.is_stopped())

    def mask(self, logits: Any) -> None:
        """Set the logits of tokens the grammar forbids next to minus infinity (in place)."""
        mask_rows(logits.unsqueeze(0), [self])

    def advance(self, token: int) -> None:
        """Follow the row's chosen token."""
        self.matcher.consume_token(token)


@functools.cache
def executor() -> Any:
    """Return llguidance's executor, which computes several rows' masks in one call."""
    import llguidance

    return llguidance.LLExecutor()


def mask_rows(logits: Any, constraints: Sequence[Constraint | None]) -> None:
    """Mask each constrained row of ``logits`` (rows x vocabulary) by its grammar, in place.

    One call computes every row's bitmask (llguidance, outside the GIL) into
    one tensor; the bits are expanded and applied for all rows at once, so a
    batch pays the Python and torch overhead once per pass, not once per row.
    ``constraints[i]`` is row i's grammar state, or None for a free row. A row
    whose grammar is in error or allows nothing may only end.
    """
    import torch

    rows = [i for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return
    matchers = [constraints[i].matcher for i in rows]  # type: ignore[union-attr]
    vocab = logits.shape[-1]
    # llguidance fills exactly the words of the tokenizer's vocabulary; a model's logits may be
    # padded past it (ids no token has: never allowed)
    words = (max(c.vocab for c in constraints if c is not None) + 31) // 32
    bitmask = torch.zeros((len(rows), words), dtype=torch.int32)
    executor().unsafe_compute_mask_ptr(
        [(m, k) for k, m in enumerate(matchers)], bitmask.data_ptr(), words * 4, len(rows)
    )
    shifts = torch.arange(32, dtype=torch.int32)
    allowed = ((bitmask.unsqueeze(-1) >> shifts) & 1).bool().view(len(rows), -1)[:, :vocab]
    if allowed.shape[1] < vocab:
        allowed = torch.nn.functional.pad(allowed, (0, vocab - allowed.shape[1]), value=False)
    for k, i in enumerate(rows):
        if matchers[k].is_error() or not bool(allowed[k].any()):  # defensive: only an end is left
            ends = [t for t in constraints[i].end_tokens if t < vocab]  # type: ignore[union-attr]
            allowed[k] = not ends  # no end token among the logits: the row runs to its cap
            allowed[k, ends] = True
    index = torch.tensor(rows)
    logits[index] = logits[index].masked_fill(~allowed, float("-inf"))
