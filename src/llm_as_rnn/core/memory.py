"""The memory h_t as text: sections, token budget, invariant and collapse guard.

Everything here is pure: a token counter is passed in, no model is called.
The memory is canonical Markdown, one ``## NAME`` header per task section::

    ## PATTERNS
    - ...
    ## RECENT ERRORS
    - ...

How it is written and read back (headers, bullets, titles) is
``tasks.markdown``'s, one definition the task check also applies.

Invariant (held after every step, on every write path): the memory is
non-empty, carries every section header of the task, and counts at most
``budget`` tokens of the predictor's tokenizer.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llm_as_rnn.core.state import MAX_BUDGET, RejectionKind, clip
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks.markdown import header, parse_sections, render_memory

TokenCounter = Callable[[str], int]

ECHO_MARKERS = ("Output only the", "Rewrite the notes below", "<observation>", "Current notes:")
"""Phrases of the rewrite prompt: a memory containing one echoes the prompt."""


def normalize(text: str, sections: Sequence[str]) -> str | None:
    """Return canonical memory from free model text, or None if no section."""
    bodies = parse_sections(text, sections)
    if not bodies:
        return None
    return render_memory(bodies, sections)


def missing_sections(text: str, sections: Sequence[str]) -> list[str]:
    """Return the task sections whose header is absent from ``text``."""
    lines = set(text.splitlines())
    return [name for name in sections if header(name) not in lines]


def output_limit(budget: int) -> int:
    """Return the tokens a rewrite or compress call may write for a memory of ``budget``.

    A quarter over the budget plus room for a preamble: a memory that fills
    its budget is written whole, and a slight overshoot reaches the compress
    and truncate steps instead of being cut off mid-sentence.
    """
    return math.ceil(1.25 * budget) + 64


def rewrite_limit(budget: int, old_tokens: int) -> int:
    """Return the tokens a full rewrite (and its compress calls) may write.

    ``output_limit(budget)``, and at most twice the current memory plus 512: a
    memory still grows to its budget within a few steps, while a model that
    rambles until its limit is stopped early.
    """
    return min(output_limit(budget), 2 * old_tokens + 512)


def min_budget(sections: Sequence[str], count: TokenCounter) -> int:
    """Return the smallest budget that can hold the section headers alone."""
    return count(render_memory({}, sections))


def invariant_violations(
    memory: str, sections: Sequence[str], budget: int, count: TokenCounter
) -> list[str]:
    """Return why ``memory`` breaks the invariant (an empty list if it holds)."""
    problems = []
    if not memory.strip():
        problems.append("memory is empty")
    missing = missing_sections(memory, sections)
    if missing:
        problems.append("missing sections: " + ", ".join(missing))
    tokens = count(memory)
    if tokens > budget:
        problems.append(f"{tokens} tokens over the budget of {budget}")
    return problems


def _prefix(body: str, limit: int) -> str:
    """Return at most ``limit`` characters of ``body``, ending at a word if that keeps half.

    A word longer than half the limit is cut, not dropped: a giant word would
    otherwise take its whole section with it.
    """
    if len(body) <= limit:
        return body
    head = body[: limit + 1]
    breaks = [m.start() for m in re.finditer(r"\s+", head)]
    if breaks and 2 * breaks[-1] >= limit:
        return head[: breaks[-1]].rstrip()
    return body[:limit].rstrip()


def truncate(memory: str, sections: Sequence[str], budget: int, count: TokenCounter) -> str:
    """Cut the memory to the budget deterministically, keeping every header.

    The longest sections are cut first: each keeps its first ``L`` characters
    (whole words where a word fits), with ``L`` the largest cap that fits
    (binary search). A short section is kept whole while a long one is cut,
    and no section is emptied unless every one is. Raises ``ConfigError``
    when even the headers alone exceed the budget.
    """
    if budget < min_budget(sections, count):
        raise ConfigError(f"budget {budget} cannot hold the section headers")
    bodies = parse_sections(memory, sections)
    canonical = render_memory(bodies, sections)
    if count(canonical) <= budget:
        return canonical

    def capped(limit: int) -> str:
        return render_memory({k: _prefix(v, limit) for k, v in bodies.items()}, sections)

    lo, hi = 0, max((len(v) for v in bodies.values()), default=0)
    while lo < hi:  # largest limit with count(capped(limit)) <= budget
        mid = (lo + hi + 1) // 2
        if count(capped(mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return capped(lo)


def cut_sections(before: str, after: str, sections: Sequence[str]) -> list[str]:
    """Return the sections whose content ``after`` (a truncation of ``before``) lost."""
    old, new = parse_sections(before, sections), parse_sections(after, sections)
    return [name for name in sections if old.get(name, "") != new.get(name, "")]


def fit_to_budget(memory: str, sections: Sequence[str], budget: int, count: TokenCounter) -> str:
    """Return the memory within budget (truncating if needed).

    Raises ``ConfigError`` naming the smallest usable budget when the section
    headers alone do not fit.
    """
    check_budget(budget, sections, count)
    return truncate(memory, sections, budget, count)


def check_budget(budget: int, sections: Sequence[str], count: TokenCounter) -> None:
    """Raise ``ConfigError`` for a budget out of range or too small for the section headers.

    The one check of a budget against the memory it bounds: the nodes make it
    on every fit (a budget given straight to the graph included), and
    ``core.budget.check_run_budget`` before a run, so no step starts with a
    budget the predict node would refuse.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
        raise ConfigError(f"invalid budget: {budget!r} is not a token count from 1 to {MAX_BUDGET}")
    floor = min_budget(sections, count)
    if budget < floor:
        raise ConfigError(
            f"budget {budget} is too small: the memory's section headers alone need "
            f"{floor} tokens; use a budget of at least {floor}"
        )


@dataclass(frozen=True)
class Verdict:
    """The collapse guard's decision on a candidate memory."""

    memory: str | None
    """The canonical candidate when accepted, else None."""
    reason: str | None
    """Why the candidate was rejected (None when accepted)."""
    kind: RejectionKind | None = None
    """The reason's kind (None when accepted)."""


def guard(
    old: str,
    raw: str,
    sections: Sequence[str],
    count: TokenCounter,
    *,
    max_shrink: float = 0.25,
    min_tokens_for_shrink: int = 48,
) -> Verdict:
    """Accept or reject a rewritten memory (the collapse guard).

    Rejected: empty text, text with no recognisable section, a rewrite that
    drops a required section or echoes the prompt, and a drastic shrink (under ``max_shrink`` of
    an old memory of at least ``min_tokens_for_shrink`` tokens), which is
    how a memory collapses in practice.
    """
    if not raw.strip():
        return Verdict(None, "empty rewrite", "empty")
    bodies = parse_sections(raw, sections)
    if not bodies:
        return Verdict(None, "unparseable rewrite: no section headers", "unparseable")
    dropped = [name for name in sections if name not in bodies]
    if dropped:
        return Verdict(None, "rewrite dropped sections: " + ", ".join(dropped), "missing section")
    if not any(bodies.values()):
        return Verdict(None, "rewrite has only empty sections", "empty")
    echoed = [m for m in ECHO_MARKERS if any(m in body for body in bodies.values())]
    if echoed:
        return Verdict(None, f"rewrite echoes the prompt ({echoed[0]!r})", "echo")
    candidate = render_memory(bodies, sections)
    old_tokens = count(old)
    if old_tokens >= min_tokens_for_shrink and count(candidate) < max_shrink * old_tokens:
        return Verdict(
            None, f"drastic shrink: {count(candidate)} tokens from {old_tokens}", "drastic shrink"
        )
    return Verdict(candidate, None)


def rejected_attempts(attempts: Sequence[tuple[str, str]], limit: int) -> str | None:
    """Return what rejected rewrite attempts said, each under its reason (None for none).

    ``attempts`` are ``(reason, text)`` in call order; each text is clipped to
    an equal share of ``limit`` characters, so the record stays bounded.
    """
    if not attempts:
        return None
    share = limit // len(attempts)
    return "\n\n".join(
        f"[attempt {n}, rejected: {why}]\n{clip(text.strip() or '(empty)', share)[0]}"
        for n, (why, text) in enumerate(attempts, 1)
    )


def diff_lines(before: str, after: str) -> list[str]:
    """Return a unified line diff of two memories (no file headers)."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
    return [line for line in lines if not line.startswith(("---", "+++"))]


def side_by_side(before: str, after: str) -> list[tuple[str, str, str, str]]:
    """Return aligned diff rows ``(left class, left text, right class, right text)``."""
    a, b = before.splitlines(), after.splitlines()
    rows: list[tuple[str, str, str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [
                ("same", a[i], "same", b[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            rows.append(
                (
                    "del" if k < len(left) else "",
                    left[k] if k < len(left) else "",
                    "add" if k < len(right) else "",
                    right[k] if k < len(right) else "",
                )
            )
    return rows
