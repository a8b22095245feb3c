"""Which memory each row of an evaluation starts from, said from its config.

A reader must not be told "cold" or "blank" of a row that started from an
imported memory (``--init-memory``): every sentence here is derived from the
``EvalConfig``, never fixed.
"""

from __future__ import annotations

from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.warm import provenance
from llm_as_rnn.evals.config import (
    BASELINES,
    MEMORY_METHODS,
    TRANSFER_METHODS,
    EvalConfig,
    base_method,
    training_method,
)

NO_MEMORY = {
    "zero-shot": "no memory (the input alone)",
    "fhc": "no memory (the full history, in its prompt)",
    "memprompt": "no memory of ours (its own feedback store, empty at step 1)",
}
"""What a baseline starts from: each keeps its own context, none an h_0."""


def file_words(file: MemoryFile) -> str:
    """Return an ``--init-memory`` file as the report names it: name, hash, origin."""
    named = f"`{file.source}`" if file.source else "(a memory text)"
    about = ", ".join([f"sha256 {file.sha256[:12]}", *provenance(file)])
    return f"the --init-memory file {named} ({about})"


def h0_words(cfg: EvalConfig) -> str:
    """Return the h_0 of the memory methods (and of the training): the file's, or the task's."""
    if cfg.initial_memory is not None:
        return file_words(cfg.initial_memory)
    return "the task's h_0 (a cold start)"


def starts_from(cfg: EvalConfig, method: str) -> str:
    """Return the memory a row's every test sequence starts from."""
    base = base_method(method)
    if base in BASELINES:
        return NO_MEMORY[base]
    if base in TRANSFER_METHODS:
        return f"the memory `{training_method(method)}` learned on the training sequences"
    if base in MEMORY_METHODS:
        return h0_words(cfg)
    return "no memory (a reference row: no model call)"


def start_section(cfg: EvalConfig) -> list[str]:
    """Return the report's section on what each row started from, and what that means."""
    lines = [
        "## Starting memory",
        "",
        "| method | every test sequence starts from |",
        "|---|---|",
        *(f"| {m} | {starts_from(cfg, m)} |" for m in cfg.model_methods()),
        "",
    ]
    if any(base_method(m) == "rnn-frozen" for m in cfg.model_methods()):
        lines += [
            "`rnn-frozen`'s error correction is not learning: its memory never changes, so "
            "a right answer after a wrong one comes from the inputs alone.",
            "",
        ]
    return lines
