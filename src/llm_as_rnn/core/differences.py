"""How two recorded settings differ: one ``name: old -> new`` line per setting, in words.

A thread's identity (``core.identity``) and an evaluation's (``config.json``) are
compared by the same lines, so a refusal to resume reads alike everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

SHOWN_AS: dict[str, dict[Hashable, str]] = {
    "structured": {True: "on", False: "off"},
    "max_new_tokens": {None: "each role's default"},
}
"""Setting values that differences show in words (their flag's: ``--structured on``), not JSON."""


def differences(
    recorded: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """Return ``name: recorded -> current`` for each setting that differs (nested: a.b).

    In the order of ``current`` (then names it lacks). Members of a mapping
    that changed alike are named once (``models.{critic,predictor}.name: ...``,
    not once per role). A budget of None (keep the thread's own) differs from
    nothing.
    """
    found: list[str | tuple[str, ...]] = []  # a line, or the inner changes of some members
    alike: dict[tuple[str, ...], list[str]] = {}
    for name in [*current, *(k for k in recorded if k not in current)]:
        old, new = recorded.get(name), current.get(name)
        if name == "budget" and new is None:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            if inner := tuple(differences(old, new)):
                if inner not in alike:
                    found.append(inner)
                alike.setdefault(inner, []).append(name)
        elif old != new:
            found.append(f"{prefix}{name}: {_shown(name, old)} -> {_shown(name, new)}")
    out: list[str] = []
    for item in found:
        if isinstance(item, str):
            out.append(item)
            continue
        names = alike[item]
        member = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
        out += [f"{prefix}{member}.{change}" for change in item]
    return out


def listed(changes: Sequence[str], most: int = 4) -> str:
    """Return changes joined by ``; ``, the first ``most`` of them and how many more."""
    shown = "; ".join(changes[:most])
    return shown + (f"; and {len(changes) - most} more" if len(changes) > most else "")


def _shown(name: str, value: Any) -> str:
    """Return a setting's value in words (``SHOWN_AS``), else as ``_short`` JSON."""
    words = SHOWN_AS.get(name, {})
    if isinstance(value, Hashable) and value in words:
        return words[value]
    return _short(value)


def _short(value: Any) -> str:
    """Return a value as JSON, a long one cut (a string's closing quote kept)."""
    if isinstance(value, str) and value.startswith("sha256:"):
        value = value[:19] + "…"  # a hash is known by its first 12 digits
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) <= 60:
        return text
    return json.dumps(value[:56] + "…") if isinstance(value, str) else text[:57] + "..."
