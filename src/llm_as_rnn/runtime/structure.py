"""Structured answers: backend-neutral descriptions of what a memory update may say.

An ``Operations`` (delta mode: ``ADD``/``EDIT``/``REMOVE``/``NONE`` lines over
the current memory's sections and note ids), a ``Skeleton`` (full mode: every
``## NAME`` header in order, each with ``- `` bullets, as many as the cap
allows) or a ``Judgement`` (the judge's ``Verdict:`` line and its field lines)
says which answers are allowed. Each backend turns it into its own form: a
local model into a grammar for constrained decoding (``lark``, run by ``runtime.grammar``);
an endpoint into a JSON schema (``runtime.schema``); a backend that cannot
constrain ignores it (the parsers still apply).

Bounds. Every free-text field (a note, a bullet, the fused call's
``Feedback:`` line) is bounded in tokens, and the literal text around the
fields is counted in bytes, since every token of a byte-level tokenizer holds
at least one byte. ``worst_tokens`` is thus a true worst case, and the
builders size a structure so that it fits the call's token cap: a
constrained answer ends on its own, never cut off.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FIELD_TOKENS = 24
"""Tokens of one note or bullet at most (about 90 characters of English)."""
MIN_FIELD_TOKENS = 6
"""Fewer tokens per note than this say nothing: below it, no structure."""
LEAD_TOKENS = 40
"""Tokens of the fused call's ``Feedback:`` line."""
CHARS_PER_TOKEN = 6
"""Characters allowed per token of a field in a grammar, which also bounds the
field in tokens (generous: English averages about four)."""
LEAD = "Feedback: "
VERDICT = "Verdict: "


def line_breaks(last: int = 0xFFFF) -> str:
    """Return every character up to ``last`` that ``str.splitlines`` ends a line on.

    Derived from ``str.splitlines`` itself, not listed: the parsers split
    answers with it, so a field holding any of these would become two lines.
    """
    every = "".join(map(chr, range(last + 1)))
    return "".join(line[-1] for line in every.splitlines(keepends=True)[:-1])


LINE_BREAKS = line_breaks()
"""The line breaks of ``str.splitlines`` (all in the BMP: a test checks every code point)."""
_OUTSIDE = r"\p{Cc}" + "".join(f"\\u{{{ord(ch):x}}}" for ch in LINE_BREAKS)
LINE = rf"[^\s{_OUTSIDE}][^{_OUTSIDE}]"
"""A field's text: it opens with a visible character (parsers strip blanks) and holds
no control character and no line break (one field, one line)."""


@dataclass(frozen=True)
class Operations:
    """A delta rewrite: up to ``max_ops`` operation lines, or ``NONE``."""

    sections: tuple[str, ...]
    """The only sections an ``ADD`` may name."""
    notes: tuple[int, ...]
    """The only note ids an ``EDIT`` or ``REMOVE`` may name."""
    max_ops: int
    field_tokens: int
    """Tokens of one note's text at most."""
    lead: bool = False
    """The answer opens with a ``Feedback:`` line (a fused call)."""
    verdicts: tuple[str, ...] = ()
    """A fused judge's verdicts: its ``Feedback:`` line opens with ``Verdict: <one>. ``."""


@dataclass(frozen=True)
class Skeleton:
    """A full rewrite: every section header in order, each with 1..``bullets`` bullets."""

    sections: tuple[str, ...]
    bullets: int
    field_tokens: int
    """Tokens of one bullet's text at most."""
    lead: bool = False
    """The answer opens with a ``Feedback:`` line (a fused call)."""
    verdicts: tuple[str, ...] = ()
    """A fused judge's verdicts: its ``Feedback:`` line opens with ``Verdict: <one>. ``."""


@dataclass(frozen=True)
class Judgement:
    """A judge's answer: ``Verdict: <one of verdicts>``, then one line per field."""

    verdicts: tuple[str, ...]
    fields: tuple[str, ...]
    """The field names, in order (``Wrong if``, ...): ``<name>: <text>`` lines."""
    field_tokens: int
    """Tokens of one field's text at most."""


Structure = Operations | Skeleton | Judgement


def size(text: str) -> int:
    """Return the tokens a literal text may take at most (one per byte)."""
    return len(text.encode())


def worst_tokens(structure: Structure) -> int:
    """Return the most tokens an answer under ``structure`` can take, its end token included."""
    if isinstance(structure, Judgement):
        verdict = max(size(f"{VERDICT}{v}\n") for v in structure.verdicts)
        fields = sum(size(f"{name}: \n") + structure.field_tokens for name in structure.fields)
        return 1 + verdict + fields
    total = 1 + (size(LEAD) + LEAD_TOKENS + 1 if structure.lead else 0)
    total += max((size(f"{VERDICT}{v}. ") for v in structure.verdicts), default=0)
    if isinstance(structure, Skeleton):
        headers = sum(size(f"## {name}\n") for name in structure.sections)
        bullet = size("- \n") + structure.field_tokens
        return total + headers + len(structure.sections) * structure.bullets * bullet
    literals = [f"ADD {name}: \n" for name in structure.sections]
    literals += [f"EDIT n{n}: \n" for n in structure.notes]  # longer than "REMOVE n<id>\n"
    literal = max(size(text) for text in literals)
    return total + max(size("NONE\n"), structure.max_ops * (literal + structure.field_tokens))


def operations(
    sections: Sequence[str],
    notes: Sequence[int],
    cap: int,
    lead: bool = False,
    max_ops: int = 3,
    verdicts: Sequence[str] = (),
) -> Operations | None:
    """Return the largest operations structure (ops first, then note length) within ``cap``.

    None when not even one operation with a short note fits.
    """
    for ops in range(max_ops, 0, -1):
        for field in range(FIELD_TOKENS, MIN_FIELD_TOKENS - 1, -2):
            ids = tuple(sorted(notes))
            found = Operations(tuple(sections), ids, ops, field, lead, tuple(verdicts))
            if worst_tokens(found) <= cap:
                return found
    return None


def skeleton(
    sections: Sequence[str], cap: int, lead: bool = False, verdicts: Sequence[str] = ()
) -> Skeleton | None:
    """Return the section skeleton with the longest bullets, then the most, within ``cap``.

    The bullets a section may hold grow with the cap (no fixed ceiling): a
    rewrite may fill what its cap allows, so a memory grows to its budget
    and a large one can be rewritten whole. None when not even one short
    bullet per section fits.
    """
    for field in range(FIELD_TOKENS, MIN_FIELD_TOKENS - 1, -2):
        one = Skeleton(tuple(sections), 1, field, lead, tuple(verdicts))
        spare = cap - worst_tokens(one)
        if spare >= 0:
            more = spare // (len(sections) * (size("- \n") + field))
            return dataclasses.replace(one, bullets=1 + more)
    return None


def judgement(verdicts: Sequence[str], fields: Sequence[str], cap: int) -> Judgement | None:
    """Return the judge's structure with the longest fields within ``cap`` (None: none fits)."""
    for field in range(FIELD_TOKENS, MIN_FIELD_TOKENS - 1, -2):
        found = Judgement(tuple(verdicts), tuple(fields), field)
        if worst_tokens(found) <= cap:
            return found
    return None


def smallest_cap(build: Callable[[int], Structure | None], most: int = 1 << 16) -> int | None:
    """Return the smallest token cap for which ``build`` gives a structure (None: none to ``most``).

    ``build`` is a builder with its other arguments bound; a larger cap never
    loses the structure a smaller one had (every builder only grows with it).
    """
    if build(most) is None:
        return None
    low, high = 1, most
    while low < high:
        middle = (low + high) // 2
        if build(middle) is None:
            low = middle + 1
        else:
            high = middle
    return low


def lark(structure: Structure) -> str:
    """Return the structure as a Lark grammar (llguidance's dialect, with token bounds)."""
    chars = structure.field_tokens * CHARS_PER_TOKEN
    rules = [
        f"field[max_tokens={structure.field_tokens}]: /{LINE}{{0,{chars - 1}}}/",
        f"lead_text[max_tokens={LEAD_TOKENS}]: /{LINE}{{0,{LEAD_TOKENS * CHARS_PER_TOKEN}}}/",
    ]
    if isinstance(structure, Judgement):
        lines = " ".join(f'{json.dumps(name + ": ")} field "\\n"' for name in structure.fields)
        rules.append("verdict: " + " | ".join(json.dumps(v) for v in structure.verdicts))
        return "\n".join([f'start: {json.dumps(VERDICT)} verdict "\\n" {lines}', *rules])
    start = f'{json.dumps(LEAD)} lead_text "\\n" ' if structure.lead else ""
    if structure.verdicts:  # a fused judge: the verdict is one of its verdicts, never left out
        start = f'{json.dumps(LEAD + VERDICT)} verdict ". " lead_text "\\n" '
        rules.append("verdict: " + " | ".join(json.dumps(v) for v in structure.verdicts))
    if isinstance(structure, Skeleton):
        bullets = f'("- " field "\\n"){{1,{structure.bullets}}}'
        headers = [json.dumps(f"## {name}\n") for name in structure.sections]
        body = " ".join(f"{h} {bullets}" for h in headers)
        return "\n".join([f"start: {start}{body}", *rules])
    ops = ['"ADD " section ": " field']
    if structure.notes:
        ops += ['"EDIT " note ": " field', '"REMOVE " note']
        rules.append("note: " + " | ".join(json.dumps(f"n{n}") for n in structure.notes))
    rules.append("section: " + " | ".join(json.dumps(name) for name in structure.sections))
    rules.append("op: " + " | ".join(ops))
    return "\n".join([f'start: {start}("NONE\\n" | (op "\\n"){{1,{structure.max_ops}}})', *rules])
