"""Delta memory updates: itemised notes with stable ids, changed by operations code applies.

In ``rewrite_mode="delta"`` the memory is the same sectioned Markdown, each
bullet a note with an id::

    ## PATTERNS
    - [n1] Dry spells last several days.

The rewriter answers with operations, one per line, instead of a new memory::

    ADD RECENT ERRORS: Predicted dry before a front; watch the wind.
    EDIT n1: Dry spells last two to four days.
    REMOVE n2
    NONE                      (nothing to change)

Code applies them. A list with no operation, or one naming an unknown
section or id, is malformed: the old memory is kept and the reason recorded.
Over the budget, code evicts notes, oldest first (lowest id), keeping every
section's newest note, before the usual truncation. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llm_as_rnn.core.memory import TokenCounter, fit_to_budget
from llm_as_rnn.core.state import RejectionKind
from llm_as_rnn.tasks.markdown import clean, parse_sections, render_memory, titled

OUTPUT_LIMIT = 256
"""Tokens a delta rewrite may write (unless the user caps them lower): a few
operations, whatever the budget."""

_NOTE = re.compile(r"^-\s*\[n(\d+)\]\s*(.*)$")
_OP = re.compile(r"^[\W\d_]*(ADD|EDIT|REMOVE|NONE)\b\s*(.*)$", re.I)
_ID = re.compile(r"^\[?n(\d+)\]?\s*:?\s*(.*)$", re.I)


@dataclass(frozen=True)
class Op:
    """One operation on the notes."""

    kind: str
    """``add``, ``edit`` or ``remove``."""
    section: str | None = None
    note: int | None = None
    text: str = ""


def notes_of(memory: str, sections: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    """Return each section's notes as ``(id, text)``; bullets without an id get new ones."""
    bodies = parse_sections(memory, sections)
    found: dict[str, list[tuple[int | None, str]]] = {}
    for name in sections:
        items: list[tuple[int | None, str]] = []
        for line in bodies.get(name, "").splitlines():
            line = line.strip()
            if not line:
                continue
            match = _NOTE.match(line)
            if match:
                items.append((int(match.group(1)), match.group(2).strip()))
            else:
                items.append((None, line.lstrip("-*• ").strip()))
        found[name] = items
    used = [n for items in found.values() for n, _ in items if n is not None]
    counter = max(used, default=0)
    out: dict[str, list[tuple[int, str]]] = {}
    for name, items in found.items():
        numbered = []
        for n, text in items:
            if n is None:
                counter += 1
                n = counter
            numbered.append((n, text))
        out[name] = numbered
    return out


def render_notes(notes: dict[str, list[tuple[int, str]]], sections: Sequence[str]) -> str:
    """Render notes as canonical memory text."""
    bodies = {s: "\n".join(f"- [n{n}] {text}" for n, text in notes.get(s, [])) for s in sections}
    return render_memory(bodies, sections)


def parse_ops(text: str, sections: Sequence[str]) -> list[Op] | str:
    """Return the operations of a reply, or why it is malformed.

    Lines that are not operations (a preamble, blank lines) are ignored; an
    operation that cannot be read makes the whole list malformed (strict).
    """
    ops: list[Op] = []
    saw_none = False
    for line in text.splitlines():
        match = _OP.match(clean(line).strip())
        if not match:
            continue
        kind, rest = match.group(1).lower(), match.group(2).strip()
        if kind == "none":
            saw_none = True
        elif kind == "add":
            added = titled(rest, sections)
            if added is None:
                return f"malformed ADD {rest[:60]!r}: use 'ADD <SECTION>: <note>'"
            ops.append(Op("add", section=added[0], text=added[1]))
        else:
            found = _ID.match(rest)
            if not found or (kind == "edit" and not found.group(2).strip()):
                return f"malformed {kind.upper()} {rest[:60]!r}: use '{kind.upper()} n<id>...'"
            ops.append(Op(kind, note=int(found.group(1)), text=found.group(2).strip()))
    if not ops and not saw_none:
        return "no operations (ADD, EDIT, REMOVE or NONE)"
    return ops


def apply_ops(memory: str, ops: Sequence[Op], sections: Sequence[str]) -> str:
    """Return the memory with ``ops`` applied; raise ``ValueError`` naming an unknown id.

    A note removed by an earlier operation of the same answer takes no later
    operation: a repeated ``REMOVE``, or an ``EDIT`` after it, is skipped (the
    answer already settled that note), not a reason to drop the whole update.
    A grammar over the memory's ids cannot forbid such repeats; an id the
    memory never had is still an error.
    """
    notes = notes_of(memory, sections)
    where = {n: name for name, items in notes.items() for n, _ in items}
    counter = max(where, default=0)
    removed: set[int] = set()
    for op in ops:
        if op.kind == "add":
            assert op.section is not None
            counter += 1
            notes[op.section].append((counter, op.text))
            where[counter] = op.section
            continue
        if op.note in removed:
            continue
        if op.note not in where:
            raise ValueError(f"{op.kind.upper()} n{op.note}: no such note")
        section = where[op.note]
        if op.kind == "remove":
            notes[section] = [(n, t) for n, t in notes[section] if n != op.note]
            del where[op.note]
            removed.add(op.note)
        else:
            notes[section] = [(n, op.text if n == op.note else t) for n, t in notes[section]]
    return render_notes(notes, sections)


def evict(memory: str, sections: Sequence[str], budget: int, count: TokenCounter) -> str:
    """Drop the oldest notes (lowest id) until the memory fits, keeping each section's newest."""
    notes = notes_of(memory, sections)
    text = render_notes(notes, sections)
    while count(text) > budget:
        newest = {name: max(n for n, _ in items) for name, items in notes.items() if items}
        candidates = [n for name, items in notes.items() for n, _ in items if n != newest[name]]
        if not candidates:
            break  # truncation takes over
        oldest = min(candidates)
        notes = {name: [(n, t) for n, t in items if n != oldest] for name, items in notes.items()}
        text = render_notes(notes, sections)
    return text


@dataclass(frozen=True)
class Applied:
    """The memory after a reply's operations, or why they could not be applied."""

    memory: str | None
    reason: str | None
    kind: RejectionKind | None = None
    """The reason's kind: ``unparseable``, or ``unknown note``."""


def apply(memory: str, reply: str, sections: Sequence[str]) -> Applied:
    """Parse a rewriter's reply and apply its operations (never raises)."""
    ops = parse_ops(reply, sections)
    if isinstance(ops, str):
        return Applied(None, f"unusable operations: {ops}", "unparseable")
    try:
        return Applied(apply_ops(memory, ops, sections), None)
    except ValueError as exc:
        return Applied(None, f"unusable operations: {exc}", "unknown note")


def fit_notes(
    memory: str, sections: Sequence[str], budget: int, count: TokenCounter
) -> tuple[str, str]:
    """Return the memory within budget and how: ``rewrite``, ``evict`` or ``truncate``."""
    if count(memory) <= budget:
        return memory, "rewrite"
    evicted = evict(memory, sections, budget, count)
    if count(evicted) <= budget:
        return evicted, "evict"
    return fit_to_budget(evicted, sections, budget, count), "truncate"
