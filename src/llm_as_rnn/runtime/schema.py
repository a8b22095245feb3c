"""Structured answers as JSON schemas (an endpoint's structured outputs), and back to text.

``json_schema`` turns a ``runtime.structure`` description into the JSON
schema of ``response_format``: delta operations as an array of operation
objects (``section`` one of the memory's section names, ``note`` one of its
note ids), a full rewrite as one array of bullets per section (every section
required, in order, in an object of their own: a key built from a title never
sits beside a fixed key such as ``feedback``), a judge's answer as its verdict
and fields (a fused judge's verdict beside its ``feedback``). A schema cannot
count tokens: each text field is bounded by characters, at the
endpoints' own estimate of a token (``runtime.backends.CHARS_PER_TOKEN``), so
an answer fits its token cap as that estimate counts it; each array is
bounded by the structure's counts.

``text_of`` converts a JSON answer back to the text form the parsers take
(``core.delta.apply``, ``core.memory.guard``, ``core.feedback.parse_verdict``),
so nothing downstream knows how the answer was decoded. Both are pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llm_as_rnn.runtime.backends import CHARS_PER_TOKEN
from llm_as_rnn.runtime.structure import (
    LEAD,
    LEAD_TOKENS,
    VERDICT,
    Judgement,
    Operations,
    Skeleton,
    Structure,
)

FEEDBACK = "feedback"
"""The property of a fused call's ``Feedback:`` line."""
VERDICT_KEY = "verdict"
"""The property of a judge's verdict (a fused judge's too)."""
SECTIONS = "sections"
"""The property holding a full rewrite's sections: keys built from section titles live
in an object of their own, so no title collides with a fixed key (``feedback``)."""
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*)\n\s*```\s*$", re.S)


def text(tokens: int) -> dict[str, Any]:
    """Return the schema of one line of text of at most ``tokens`` tokens."""
    return {"type": "string", "minLength": 1, "maxLength": int(tokens * CHARS_PER_TOKEN)}


def obj(properties: dict[str, Any]) -> dict[str, Any]:
    """Return the schema of an object with exactly these properties, all required, in order."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def one_of(values: list[str]) -> dict[str, Any]:
    """Return the schema of a string that is one of ``values``."""
    return {"type": "string", "enum": values}


def name_of(structure: Structure) -> str:
    """Return the schema's name (``response_format``'s ``json_schema.name``)."""
    if isinstance(structure, Operations):
        return "memory_operations"
    return "memory" if isinstance(structure, Skeleton) else "judgement"


def field_key(name: str) -> str:
    """Return the JSON property of a judge's field (``Wrong if`` -> ``wrong_if``)."""
    return "_".join(name.lower().split())


def json_schema(structure: Structure) -> dict[str, Any]:
    """Return the JSON schema of answers under ``structure``."""
    line = text(structure.field_tokens)
    if isinstance(structure, Judgement):
        fields = {field_key(name): line for name in structure.fields}
        return obj({VERDICT_KEY: one_of(list(structure.verdicts)), **fields})
    lead = {FEEDBACK: text(LEAD_TOKENS)} if structure.lead else {}
    if structure.verdicts:  # a fused judge's verdict is constrained as the judge's own is
        lead = {VERDICT_KEY: one_of(list(structure.verdicts)), **lead}
    if isinstance(structure, Skeleton):
        bullets = {"type": "array", "items": line, "minItems": 1, "maxItems": structure.bullets}
        return obj({**lead, SECTIONS: obj({name: bullets for name in structure.sections})})
    kinds = [
        obj({"op": one_of(["ADD"]), "section": one_of(list(structure.sections)), "text": line})
    ]
    if structure.notes:
        notes = one_of([f"n{n}" for n in structure.notes])
        kinds.append(obj({"op": one_of(["EDIT"]), "note": notes, "text": line}))
        kinds.append(obj({"op": one_of(["REMOVE"]), "note": notes}))
    ops = {"type": "array", "items": {"anyOf": kinds}, "maxItems": structure.max_ops}
    return obj({**lead, "operations": ops})


def one_line(value: Any) -> str | None:
    """Return a JSON string as one line of text (None if it is not a non-blank string)."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def text_of(structure: Structure, answer: str) -> str | None:
    """Return the text form of a JSON answer under ``structure`` (None: not such an answer).

    Delta: ``ADD <SECTION>: <text>`` / ``EDIT n<id>: <text>`` / ``REMOVE n<id>``
    lines, ``NONE`` for no operation; full: ``## NAME`` headers in the
    structure's order with ``- `` bullets; judge: ``Verdict:`` and field lines.
    A fused call's answer opens with its ``Feedback:`` line. Values are not
    checked against the enums here: the parsers that read the text do that.
    JSON in one Markdown code fence (```` ```json ````) is read as the JSON.
    """
    fenced = _FENCE.match(answer)
    try:
        value = json.loads(fenced.group(1) if fenced else answer)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    if isinstance(structure, Judgement):
        said = {"Verdict": one_line(value.get(VERDICT_KEY))}
        said |= {name: one_line(value.get(field_key(name))) for name in structure.fields}
        if None in said.values():
            return None
        return "\n".join(f"{name}: {line}" for name, line in said.items())
    lines = []
    if structure.lead:
        lead = one_line(value.get(FEEDBACK))
        verdict = one_line(value.get(VERDICT_KEY)) if structure.verdicts else ""
        if lead is None or verdict is None:
            return None
        lines.append(LEAD + (f"{VERDICT}{verdict}. " if verdict else "") + lead)
    body = (
        operation_lines(value) if isinstance(structure, Operations) else bullets(structure, value)
    )
    return None if body is None else "\n".join([*lines, *body])


def operation_lines(value: dict[str, Any]) -> list[str] | None:
    """Return the operation lines of a JSON delta answer (None when it is not one)."""
    ops = value.get("operations")
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        return None
    lines = []
    for op in ops:
        kind, where, said = op.get("op"), op.get("section") or op.get("note"), op.get("text")
        if not isinstance(kind, str) or not isinstance(where, str):
            return None
        note = one_line(said)
        lines.append(f"{kind} {where}" + (f": {note}" if note is not None else ""))
    return lines or ["NONE"]


def bullets(structure: Skeleton, value: dict[str, Any]) -> list[str] | None:
    """Return a JSON full rewrite as sectioned Markdown lines (None when it is not one)."""
    sections = value.get(SECTIONS)
    if not isinstance(sections, dict):
        return None
    lines = []
    for name in structure.sections:
        items = sections.get(name)
        if not isinstance(items, list):
            return None
        lines.append(f"## {name}")
        lines += [f"- {line}" for line in map(one_line, items) if line is not None]
    return lines
