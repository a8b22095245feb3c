"""One grammar for numbers: regression targets and the numbers in model answers (pure).

Every place that reads a number from a data file, from a Python value or from
a model's reply goes through ``number`` (a whole value) or ``read_number``
(free text), so a number means the same everywhere.

A numeral (digits are ASCII 0-9):

    form                       examples                  reads as
    integer, decimal           42, -3.25                 42, -3.25
    sign: + - or U+2212 minus  +5, −0.4                  5, -0.4
    leading / trailing point   .5, -.5, 5.               0.5, -0.5, 5
    exponent                   1.5e-3, 2E+04, 5.e3       0.0015, 20000, 5000
    thousands commas           1,234,567.8, 1,234.5      1234567.8, 1234.5
    percent (percent tasks)    12%, 12 percent           12
    markdown, quotes around    **0.4**, `0.4`, "0.4"     0.4

Refused (a target: ``ValueError`` saying why; in an answer: unreadable, None):

- booleans (``true``/``false`` in JSON, ``True``/``False`` in Python), None,
  containers; ``nan``, ``inf``, hex, underscores, digits of other scripts;
- a comma that does not group thousands (``0,5``, ``1,23``, ``0,123``,
  ``1,2345``): commas only ever group thousands, decimals take a point;
- one comma group without decimals (``1,234``): 1234, or a decimal comma
  1.234? Write ``1234``;
- digits grouped by spaces (``1 234``);
- letters glued to the digits (``10k``, ``2M``, ``5mm``, ``0x1A``, ``2nd``): a
  multiplier or a unit? (``5 mm`` with a space reads as 5);
- a percent sign where the task's numbers are not percent (``12%``: 12 or
  0.12?);
- magnitudes above ``LIMIT`` (1e150), so every error and its square stays
  finite: no overflow when scoring, no ``Infinity`` in a results file.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from numbers import Real

LIMIT = 1e150
"""The largest magnitude accepted: the squared error of two such numbers (4e300) is finite."""

_SIGN = "+\\-\u2212"
_NUMERAL = re.compile(
    rf"[{_SIGN}]?"
    r"(?:(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)"
    rf"(?:[eE][{_SIGN}]?[0-9]+)?"
)
"""A well-formed numeral, as a whole (percent mark and decoration excluded)."""
_TOKEN = re.compile(
    # Not inside a word or another number ("x1", "v2.0", "t-1"); "_" is markdown.
    rf"(?<![^\W_])(?<![.,])(?<![^\W_][{_SIGN}])"
    # Everything number-like, greedily, so that "0,5", "1.2.3", "3-4", "1 234" or
    # "2M" is read as one malformed numeral, never as a well-formed piece of it.
    rf"(?P<numeral>[{_SIGN}]?(?:[0-9]|[.,](?=[0-9]))"
    rf"(?:[0-9]|[.,_](?=[0-9])|\.?[eE][{_SIGN}]?(?=[0-9])|[{_SIGN}](?=[0-9])"
    r"|[ \u00a0\u2009\u202f](?=[0-9]{3}(?![0-9])))*"
    r"[^\W\d_]*)"  # letters glued on: a multiplier (10k, 2M), a unit (5mm), hex (0x1A)?
    r"(?P<percent>\.?[ \t]*(?:%|per ?cent\b))?",  # "5.%": a trailing point, then %
    re.I,
)
"""A numeral in text, well-formed or not, with its percent mark if any."""
_DECORATION = " \t\r\n*_`'\""
"""What may surround a whole value (whitespace, markdown, quotes)."""
_MARKER = re.compile(r"\b(answer|prediction|forecast|return)\b", re.I)
_GAP = re.compile(r"(?:\W|_)*(?:(?:is|of)\b(?:\W|_)*)?", re.I)
"""What may stand between an answer marker and its number (``: **``, `` is ``)."""
_ALTERNATIVE = re.compile(rf"[ \t]*(?:[-–—/~]|to|or|and)[ \t]*[{_SIGN}]?[.,]?[0-9]", re.I)
"""A second number joined to the first (``3 to 4``, ``0.2 or 0.3``): a range, ambiguous."""
_ATTACHED = re.compile(r"[-‐-―−﹘﹣－+]\s*\Z")
"""A dash or sign right before a numeral that has none of its own (``– 0.42``, ``--5``):
a sign the grammar does not read, so the value is unknown, never the unsigned number."""
_JOINED = re.compile(r"\s*[×x*^⁄/'’]\s*[0-9]")
"""An operator joining the numeral to more digits (``1×10^3``, ``1⁄2``, ``1'000``)."""
_HINT = "write it as 1234.5, -1.5e-3 or 1,234,567.8"


def quoted(value: object) -> str:
    """Return a value as an error message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _bounded(value: float, shown: str) -> float:
    """Return ``value`` if it is finite and within ``LIMIT``; else ``ValueError``."""
    if math.isnan(value):
        raise ValueError(f"{shown} is not a number")
    if abs(value) > LIMIT:
        raise ValueError(
            f"{shown} is beyond ±1e150 (numbers must be finite and at most 1e150 "
            "in size, so that squared errors stay finite)"
        )
    return value


def _value(token: re.Match[str], percent: bool) -> float:
    """Return the value of a numeral found by ``_TOKEN``; ``ValueError`` saying why not."""
    numeral, shown = token["numeral"], quoted(token.group(0))
    if not _NUMERAL.fullmatch(numeral):
        if "," in numeral:
            raise ValueError(
                f"{shown} is not a number: a comma only groups thousands (1,234,567.8); "
                "write decimals with a point"
            )
        raise ValueError(f"{shown} is not a number ({_HINT})")
    if numeral.count(",") == 1 and not re.search(r"\.[0-9]", numeral):
        raise ValueError(
            f"{shown} is ambiguous (a thousands comma or a decimal comma?): "
            "write it without the comma"
        )
    if token["percent"] and not percent:
        raise ValueError(
            f"{shown} is a percentage, but this task's numbers are not percent: "
            "write the number alone"
        )
    return _bounded(float(numeral.replace(",", "").replace("\u2212", "-")), shown)


def number(value: object, *, percent: bool = False) -> float:
    """Return the number ``value`` denotes, or raise ``ValueError`` saying why it is none.

    Args:
        value: an int, a float (or another real number), or a string holding
            exactly one numeral of the grammar, optionally within whitespace,
            markdown or quotes. Booleans are never numbers.
        percent: whether the task's numbers are in percent (``"12%"`` is 12);
            otherwise a percent mark is refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a boolean, not a number")
    if isinstance(value, str):
        tokens = list(_TOKEN.finditer(value))
        if len(tokens) != 1:
            raise ValueError(f"{quoted(value)} is not a number ({_HINT})")
        before, after = value[: tokens[0].start()], value[tokens[0].end() :]
        if before.strip(_DECORATION) or after.strip(_DECORATION + "."):
            raise ValueError(f"{quoted(value)} is not a number ({_HINT})")
        return _value(tokens[0], percent)
    if isinstance(value, Real | Decimal):
        try:
            converted = float(value)
        except OverflowError:  # an int or a fraction too large for a float
            converted = math.inf
        return _bounded(converted, quoted(value))
    raise ValueError(f"{quoted(value)} is not a number")


def _reading(token: re.Match[str], percent: bool) -> float | None:
    try:
        return _value(token, percent)
    except ValueError:
        return None


def read_number(text: str, *, percent: bool = False) -> float | None:
    """Return the number a model's reply answers with, or None when it has none or is ambiguous.

    The numeral right after an ``Answer`` marker (``Answer: -0.4``, ``**Answer:**
    `1.5e-3```, ``the answer is 7``) wins; without one, the numeral after a
    ``prediction``/``forecast``/``return`` marker; without any, the only numeral
    in the reply. It is None when that numeral is malformed or ambiguous (see
    the module docstring), when markers of the same kind give different
    numbers, when the reply names several numbers and no marker, and when the
    numeral starts a range or a choice (``3 to 4``, ``0.2 or 0.3``).
    """
    tokens = list(_TOKEN.finditer(text))
    answers: list[re.Match[str]] = []
    others: list[re.Match[str]] = []
    for mark in _MARKER.finditer(text):
        after = next((t for t in tokens if t.start() >= mark.end()), None)
        if after is not None and _GAP.fullmatch(text[mark.end() : after.start()]):
            (answers if mark.group(1).lower() == "answer" else others).append(after)
    chosen = answers or others or (tokens if len(tokens) == 1 else [])
    if any(_ALTERNATIVE.match(text, t.end()) or _JOINED.match(text, t.end()) for t in chosen):
        return None
    if any(_ATTACHED.search(text, 0, t.start()) for t in chosen):
        return None
    values = {_reading(t, percent) for t in chosen}
    return values.pop() if len(values) == 1 else None
