"""The memory's Markdown: section headers, bullets, and what a section title may be.

One definition of how a memory is written (``render_memory``) and read back
(``parse_sections``). The task check (``Task.check``) accepts a section title
exactly when a memory rendered with it parses back to it (``title_problem``),
so every title a task may have reads back, on every path: free text, a
grammar-constrained answer (which writes ``## <title>`` verbatim), a JSON
answer turned into text. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llm_as_rnn.runtime.structure import LINE_BREAKS

DECORATION = " \t#*_:=-`>[]"
"""What models put around a header in free text (``**PATTERNS:**``, ``### PATTERNS``)."""
HEADER = "## "
MARKS = "*#` "
"""Decoration models put around a section name on an operation line (``**PATTERNS**``)."""
_FENCE = re.compile(r"^\s*(```[\w-]*|</?memory>)\s*$")
_BULLET = re.compile(r"^\s*[-*•]\s")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Characters no memory holds: control codes (a terminal acts on ESC, BEL...) and
bidirectional overrides (they make text read other than it is); tabs and line ends stay."""
_CUT = re.compile("\ufffd+$", re.M)
"""A character cut at a line's end: a field's token bound can end it mid-character, and
its bytes decode to U+FFFD."""


def clean(text: str) -> str:
    """Return model text without ``CONTROL`` characters and without characters cut at line ends.

    Every path by which model text reaches a memory or a feedback applies it.
    """
    return _CUT.sub("", CONTROL.sub("", text))


def header(name: str) -> str:
    """Return the canonical header line of a section."""
    return f"{HEADER}{name}"


def section_of(line: str, names: dict[str, str]) -> str | None:
    """Return the section a line opens (``names``: upper-cased title -> title), if any.

    The canonical header ``## <title>`` is matched as it is first, so a title
    with decoration of its own (``-DRAFT-``, ``NOTES:``) reads back; then a
    decorated header of free text (``**PATTERNS:**``). A bullet (``- ...``) is
    content, whatever it says: a note may name a section.
    """
    text = line.strip()
    if _BULLET.match(text):
        return None
    if text.startswith(HEADER) and text[len(HEADER) :].strip().upper() in names:
        return names[text[len(HEADER) :].strip().upper()]
    return names.get(text.strip(DECORATION).strip().upper())


def parse_sections(text: str, sections: Sequence[str]) -> dict[str, str]:
    """Split text into the task's sections, tolerating decorated headers.

    Lines before the first recognised header (preambles such as "Here is the
    updated memory:"), Markdown code fences and headers of unknown sections
    (small models truncate or invent them) are dropped. A section that
    appears twice keeps both bodies, in order.
    """
    names = {s.upper(): s for s in sections}
    bodies: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        line = clean(line)  # a model's stray control codes never reach a memory
        if _FENCE.match(line):
            continue
        name = section_of(line, names)
        if name is not None:
            current = name
            bodies.setdefault(name, [])
        elif line.lstrip().startswith("#"):
            continue  # a header of no section of ours (often a truncated one) is not content
        elif current is not None:
            bodies[current].append(line.rstrip())
    return {name: "\n".join(_unique(lines)).strip() for name, lines in bodies.items()}


def _unique(lines: list[str]) -> list[str]:
    """Drop repeated non-blank lines (small models repeat sections verbatim)."""
    seen: set[str] = set()
    out = []
    for line in lines:
        key = line.strip()
        if key and key in seen:
            continue
        seen.add(key)
        out.append(line)
    return out


def render_memory(bodies: dict[str, str], sections: Sequence[str]) -> str:
    """Render section bodies as canonical memory text, in the task's order."""
    parts = []
    for name in sections:
        body = bodies.get(name, "").strip()
        parts.append(f"{header(name)}\n{body}" if body else header(name))
    return "\n\n".join(parts)


def titled(line: str, sections: Sequence[str]) -> tuple[str, str] | None:
    """Return the section and text of a ``<SECTION>: <text>`` line (None: not one).

    The section names are matched first, longest first, so a title holding a
    colon (``NOTES: WIND``) is not split at it; as written first, so a title
    with decoration of its own (``*KEY*``) keeps it.
    """
    for text in dict.fromkeys([line.strip(), line.lstrip(MARKS)]):  # as written, then bare
        for name in sorted(sections, key=len, reverse=True):
            if text[: len(name)].upper() == name.upper():
                after = text[len(name) :].lstrip(MARKS)
                if after.startswith(":") and after[1:].strip():
                    return name, after[1:].strip()
    return None


def opens(title: str, other: str) -> bool:
    """Return whether ``other`` reads as ``title`` followed by its colon (``A`` and ``A: B``)."""
    head = other[: len(title)]
    return head.upper() == title.upper() and other[len(title) :].lstrip(MARKS).startswith(":")


def title_problem(title: str, sections: Sequence[str]) -> str | None:
    """Return why ``title`` cannot be one of ``sections``' titles (None: it can).

    The one rule: a memory rendered with every title, one bullet each, must
    parse back to the same bullet under each title, and a ``<title>: <text>``
    line (a delta ``ADD``) to that title. It refuses line breaks (any
    ``str.splitlines`` breaks on, ``runtime.structure.LINE_BREAKS``),
    characters the parser strips (``CONTROL``), and a title that another
    opens with a colon (``A`` and ``A: B``: is ``ADD A: B: x`` a note of ``A``?).
    """
    if any(ch in LINE_BREAKS for ch in title):
        return "must be one line (it holds a line break)"
    if CONTROL.search(title):
        return "must not hold control or bidirectional-override characters"
    bodies = {name: f"- note {i}" for i, name in enumerate(sections)}
    if parse_sections(render_memory(bodies, sections), sections).get(title) != bodies[title]:
        return f"does not read back from its header line {header(title)!r}"
    if clash := next((other for other in sections if other != title and opens(title, other)), None):
        return f"opens {clash!r} with a colon: an ADD to either would read the same"
    if titled(f"{title}: x", sections) != (title, "x"):
        return f"does not read back from an operation line {f'{title}: ...'!r}"
    return None
