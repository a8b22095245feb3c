"""Reading a label out of free text, for any label set (pure functions).

Labels may be several words, hyphenated, numeric, accented or emoji
(``heavy rain``, ``no-rain``, ``2``, ``été``, ``☀️ sunny``). Matching is
case-insensitive and Unicode-normalised, whole-label only (``rain`` is not
found inside ``rainbow``, ``1`` not inside ``1.5``), longest label first
(``heavy rain`` wins over ``rain``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping

_MARK = re.compile(
    r"\b(?:answer|prediction|forecast|label)\s*(?:is|:|=|-)?[ \t]*[*_`\"']*[ \t]*([^\n]*)", re.I
)
_DECORATION = " \t*_`\"'.,;:!?)]}"


def normalize(text: str) -> str:
    """Return text as labels are compared: NFKC, lower case, single spaces, no VS16."""
    text = unicodedata.normalize("NFKC", text).replace("\ufe0f", "").lower()
    return " ".join(text.split())


@functools.lru_cache(maxsize=256)
def _matcher(names: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for a set of names, longest first: whole names only, not before a decimal."""
    ordered = sorted(names, key=len, reverse=True)
    alternatives = "|".join(re.escape(name) for name in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)(?![.,]\d)")


def find_labels(text: str, names: Mapping[str, str]) -> list[str]:
    """Return the labels named in ``text`` in order (the longest name wins where they overlap).

    ``names`` maps a normalised name (a label or a synonym) to its label.
    """
    return [names[m.group(0)] for m in _matcher(tuple(names)).finditer(text)]


def leading_label(text: str, names: Mapping[str, str]) -> str | None:
    """Return the label whose longest name starts ``text`` (after decoration), if any."""
    match = _matcher(tuple(names)).match(text.lstrip(_DECORATION))
    return names[match.group(0)] if match else None


def read_label(text: str, names: Mapping[str, str]) -> str | None:
    """Return the label a reply gives, or None when it gives none or is ambiguous.

    After an answer marker (``Answer: ...``) the label starting the rest of
    the line wins, else the only label that line names; without a usable
    marker, the only label the whole reply names.
    """
    text = normalize(text)
    for match in _MARK.finditer(text):
        rest = match.group(1)
        label = leading_label(rest, names)
        if label is not None:
            return label
        found = set(find_labels(rest, names))
        if len(found) == 1:
            return found.pop()
    found = set(find_labels(text, names))
    return found.pop() if len(found) == 1 else None
