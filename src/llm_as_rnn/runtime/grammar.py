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
from collections.abc import Iterable
from typing import Any

from llm_as_rnn.runtime.structure import Structure, lark


def llg_tokenizer(tokenizer: Any, end_tokens: Iterable[int]) -> Any:
    """Return llguidance's view of a Hugging Face fast tokenizer (about a second: cache it)."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, eos_token=sorted(end_tokens))


@functools.cache  # one compiled grammar per structure (they repeat from step to step)
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

    @property
    def complete(self) -> bool:
        """Whether the answer is complete: the grammar takes no further token."""
        return bool(self.matcher.is_stopped())

    def mask(self, logits: Any) -> None:
        """Set the logits of tokens the grammar forbids next to minus infinity (in place)."""
        import numpy as np
        import torch

        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: logits.shape[-1]].astype(bool)
        keep = torch.zeros(logits.shape[-1], dtype=torch.bool)
        keep[: len(allowed)] = torch.from_numpy(allowed)
        if self.matcher.is_error() or not keep.any():  # defensive: only an end is left
            keep[:] = False
            keep[self.end_tokens] = True
        logits.masked_fill_(~keep, float("-inf"))

    def advance(self, token: int) -> None:
        """Follow the row's chosen token."""
        self.matcher.consume_token(token)
