"""Rewrites rejected, counted by kind, and how updates were structured.

What the run summary, trace page and eval report show about a run's memory updates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.state import NO_REWRITE, REJECTION_KINDS
from llm_as_rnn.runtime.backends import Structuring
from llm_as_rnn.runtime.resolve import aresolve


class RejectionCounts(TypedDict):
    """Rewrites made and rejected, by kind: ``{"rewrites": 6, "rejected": 1, "by_kind": ...}``."""

    rewrites: int
    rejected: int
    by_kind: dict[str, int]
    """Rejected rewrites per kind (``REJECTION_KINDS``), the kinds that occurred."""
    without_rewrite: dict[str, int]
    """Steps that asked for no rewrite, per ``NO_REWRITE`` kind (``skipped``, ``frozen``)."""


def rejections(records: Sequence[Mapping[str, Any]]) -> RejectionCounts:
    """Count the rewrites of step records and those rejected, by kind.

    ``records`` are trace records or ``steps.jsonl`` lines (both carry
    ``rewrite_rejected``, ``enforcement`` and ``rejection_kind``); steps that
    made no rewrite (a method without one, ``NO_REWRITE``) are not counted.
    A rejection recorded before kinds were is counted as ``unrecorded``.
    """
    rewrites = [
        r
        for r in records
        if r.get("rewrite_rejected") is not None and r.get("enforcement") not in NO_REWRITE
    ]
    found = Counter(
        r.get("rejection_kind") or "unrecorded" for r in rewrites if r["rewrite_rejected"]
    )
    order = [*REJECTION_KINDS, "unrecorded"]
    asked_none = Counter(r.get("enforcement") for r in records)
    return {
        "rewrites": len(rewrites),
        "rejected": sum(found.values()),
        "by_kind": {kind: found[kind] for kind in order if found[kind]},
        "without_rewrite": {kind: asked_none[kind] for kind in NO_REWRITE if asked_none[kind]},
    }


def rejection_text(record: Mapping[str, Any]) -> str | None:
    """Return a rejected rewrite's kind beside its reason (``unknown note: no such note``).

    The kind in the words of ``rejections_line``; None when the step rejected nothing.
    """
    reason, kind = record.get("rejection_reason"), record.get("rejection_kind")
    if not reason:
        return None
    return f"{kind}: {reason}" if kind and not reason.startswith(kind) else reason


def rejections_line(counts: Mapping[str, Any], lead: str = "rewrites rejected: ") -> str:
    """Return ``rewrites rejected: 1 of 6 (drastic shrink 1) · skipped 1`` for ``rejections``."""
    kinds = ", ".join(f"{kind} {n}" for kind, n in counts["by_kind"].items())
    line = f"{lead}{counts['rejected']} of {counts['rewrites']}" + (f" ({kinds})" if kinds else "")
    return line + "".join(f" · {k} {n}" for k, n in counts.get("without_rewrite", {}).items())


async def structuring(ctx: Context) -> Structuring:
    """Say how a run's memory updates were structured: off, or as its rewriter's backend did.

    A backend's refusal is known to the process it happened in: ask after the run.
    """
    if not ctx.structured:
        return "off"
    backend = await aresolve(ctx.model_for("rewriter"), ctx.endpoint())
    return backend.structuring()
