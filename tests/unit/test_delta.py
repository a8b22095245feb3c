"""Delta memory updates: operations on numbered notes, applied by code, eviction under λ."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn.core import delta
from llm_as_rnn.core.memory import invariant_violations
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.testing import FunctionChatModel, rule_based
from tests.conftest import make_context
from tests.reliability.fault_server import HOSTILE
from tests.unit.test_choice import killed_and_straight, run

SECTIONS = ("PATTERNS", "RECENT ERRORS", "RULES OF THUMB")
MEMORY = (
    "## PATTERNS\n- dry spells last\n\n## RECENT ERRORS\n- None yet.\n\n"
    "## RULES OF THUMB\n- [n7] wind"
)


def test_notes_get_stable_ids() -> None:
    notes = delta.notes_of(MEMORY, SECTIONS)
    assert notes == {
        "PATTERNS": [(8, "dry spells last")],
        "RECENT ERRORS": [(9, "None yet.")],
        "RULES OF THUMB": [(7, "wind")],
    }
    again = delta.notes_of(delta.render_notes(notes, SECTIONS), SECTIONS)
    assert again == notes  # ids survive a round trip


def test_operations_are_parsed_strictly() -> None:
    reply = (
        "Here are my changes:\n1. ADD recent errors: front came early\n"
        "- EDIT n8: spells end\nREMOVE [n9]"
    )
    assert delta.parse_ops(reply, SECTIONS) == [
        delta.Op("add", section="RECENT ERRORS", text="front came early"),
        delta.Op("edit", note=8, text="spells end"),
        delta.Op("remove", note=9),
    ]
    assert delta.parse_ops("NONE", SECTIONS) == []
    assert "no operations" in str(delta.parse_ops("I think it will rain.", SECTIONS))
    assert "malformed ADD" in str(delta.parse_ops("ADD WEATHER: x", SECTIONS))  # no such section
    assert "malformed EDIT" in str(delta.parse_ops("EDIT n8", SECTIONS))  # no text


def test_operations_are_applied_by_code() -> None:
    reply = "ADD RECENT ERRORS: front came early\nEDIT n8: spells end\nREMOVE n9"
    applied = delta.apply(MEMORY, reply, SECTIONS)
    assert applied.memory == (
        "## PATTERNS\n- [n8] spells end\n\n## RECENT ERRORS\n- [n10] front came early\n\n"
        "## RULES OF THUMB\n- [n7] wind"
    )
    unknown = delta.apply(MEMORY, "REMOVE n42", SECTIONS)
    assert unknown.memory is None
    assert unknown.reason == "unusable operations: REMOVE n42: no such note"


def test_operations_on_a_note_the_same_answer_removed_are_skipped() -> None:
    """A grammar over the memory's ids allows ``REMOVE n9`` twice: the update still lands."""
    removed = delta.apply(MEMORY, "REMOVE n9", SECTIONS).memory
    assert removed is not None
    assert "[n9]" not in removed
    for reply in ("REMOVE n9\nREMOVE n9", "REMOVE n9\nEDIT n9: back again"):
        assert delta.apply(MEMORY, reply, SECTIONS) == delta.Applied(removed, None)
    edited_then_removed = delta.apply(MEMORY, "EDIT n9: x\nREMOVE n9", SECTIONS)
    assert edited_then_removed.memory == removed


def test_eviction_drops_the_oldest_notes_first() -> None:
    notes = {
        "PATTERNS": [(1, "a " * 20), (4, "b " * 20)],
        "RECENT ERRORS": [(2, "c " * 20)],
        "RULES OF THUMB": [(3, "d " * 20), (5, "e " * 20)],
    }
    memory = delta.render_notes(notes, SECTIONS)
    fitted, how = delta.fit_notes(memory, SECTIONS, approx_tokens(memory) - 8, approx_tokens)
    assert how == "evict"
    kept = delta.notes_of(fitted, SECTIONS)
    assert [n for items in kept.values() for n, _ in items] == [4, 2, 3, 5]  # n1 went first
    tiny, how = delta.fit_notes(memory, SECTIONS, 40, approx_tokens)
    assert how == "truncate"  # each section's newest note alone is still too long
    assert invariant_violations(tiny, SECTIONS, 40, approx_tokens) == []


@pytest.mark.parametrize(
    ("step_mode", "feedback"),
    [
        ("three-call", "supervised"),
        ("fused", "supervised"),
        ("three-call", "judge"),
        ("lazy", "supervised"),
    ],
)
async def test_delta_mode_holds_the_budget_in_every_step_mode(
    step_mode: str, feedback: str
) -> None:
    ctx = make_context(
        "fake",
        task="weather",
        rewrite_mode="delta",
        budget=120,
        step_mode=step_mode,
        feedback=feedback,
    )
    records = await run(ctx, 12, f"{step_mode}-{feedback}")
    assert [r["step"] for r in records] == list(range(1, 13))
    for r in records:
        assert invariant_violations(r["memory_after"], SECTIONS, 120, approx_tokens) == []
    changed = [r for r in records if r["memory_after"] != r["memory_before"]]
    assert len(changed) >= 4
    if step_mode != "lazy":
        assert "evict" in {r["enforcement"] for r in records}
    rewriter = [r["usage"].get("rewriter", {}).get("completion_tokens", 0) for r in records]
    assert max(rewriter) < 120  # a few operations, not a memory


async def test_malformed_operations_keep_the_old_memory() -> None:
    base = rule_based(0)

    def junk(messages: list[Any]) -> str:
        last = str(messages[-1].content)
        if "operations" in last:
            return "REMOVE n99" if "Current notes" in last else "Sure, here you go."
        return base(messages)

    ctx = make_context(FunctionChatModel(respond=junk), task="weather", rewrite_mode="delta")
    records = await run(ctx, 3, "junk")
    for r in records:
        assert r["memory_after"] == r["memory_before"]
        assert r["enforcement"] == "kept"
        assert "unusable operations" in r["rejection_reason"]


async def test_hostile_rewriter_in_delta_mode() -> None:
    base = rule_based(0)
    draws = iter(range(10_000))

    def hostile(messages: list[Any]) -> str:
        n = next(draws)
        return HOSTILE[n % len(HOSTILE)] if n % 2 else base(messages)

    ctx = make_context(
        FunctionChatModel(respond=hostile), task="weather", rewrite_mode="delta", budget=160
    )
    records = await run(ctx, 12, "hostile")
    assert [r["step"] for r in records] == list(range(1, 13))
    for r in records:
        assert invariant_violations(r["memory_after"], SECTIONS, 160, approx_tokens) == []
    assert "HACKED" not in records[-1]["memory_after"] or records[-1]["rewrite_rejected"] is False


def test_killed_delta_run_resumes_to_the_same_trace(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "llm_as_rnn",
        "run",
        "--task",
        "weather",
        "--rewrite-mode",
        "delta",
    ]
    a, b = killed_and_straight(command, tmp_path, 300)
    assert [(r["memory_after"], r["enforcement"]) for r in a] == [
        (r["memory_after"], r["enforcement"]) for r in b
    ]
