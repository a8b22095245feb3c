"""Where things live in the store: every namespace of the package, in one place.

Names are data: thread ids, sequence ids and file names may hold any
character, but LangGraph store labels may not contain '.' or NUL, nor be
empty. ``encode`` maps any string to a valid label and ``decode`` maps it
back, exactly.
"""

from __future__ import annotations

import re

ROOT = "llm_as_rnn"
"""The root label of every namespace this package writes."""

_ESCAPES = {"%": "%25", ".": "%2E", "\x00": "%00"}
_ENCODE = str.maketrans(_ESCAPES)  # one C pass (names are encoded on every store access)
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_ESCAPED = re.compile("|".join(re.escape(v) for v in _UNESCAPES))
EMPTY = "%"
"""The label of the empty string (never produced by escaping, as '%' always is)."""


def encode(name: str) -> str:
    """Return a store label that stands for ``name`` (reversible)."""
    if not name:
        return EMPTY
    return name.translate(_ENCODE)


def decode(label: str) -> str:
    """Return the name a label of ``encode`` stands for."""
    if label == EMPTY:
        return ""
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group(0)], label)


def trace(thread_id: str) -> tuple[str, ...]:
    """Return the namespace of a thread's step records."""
    return (ROOT, "trace", encode(thread_id))


TRACES = (ROOT, "trace")
"""The prefix of every thread's trace namespace."""


def settings(thread_id: str) -> tuple[str, ...]:
    """Return the namespace of a thread's recorded settings (its identity)."""
    return (ROOT, "settings", encode(thread_id))


def discarded(thread_id: str) -> tuple[str, ...]:
    """Return the namespace of a thread's discarded steps (``OnlineLearner.discard``)."""
    return (ROOT, "discarded", encode(thread_id))


def imported(thread_id: str) -> tuple[str, ...]:
    """Return the namespace of a warm-started thread's import.

    Key ``h0`` (``core.warm``): where its initial memory came from, whether it
    was edited by hand or fitted to the budget.
    """
    return (ROOT, "imported", encode(thread_id))


def branch(thread_id: str, branch: str) -> tuple[str, ...]:
    """Return the namespace of the step records a rewind took off a thread (its old branch)."""
    return (ROOT, "branch", encode(thread_id), encode(branch))


def journal(thread_id: str) -> tuple[str, ...]:
    """Return the namespace of a thread's call journal."""
    return (ROOT, "calls", encode(thread_id))


def eval_records(task: str, method: str, sequence: str, key: str) -> tuple[str, ...]:
    """Return the namespace of a baseline's step records for one sequence and settings key."""
    return (ROOT, "eval", encode(task), encode(method), encode(sequence), encode(key))
