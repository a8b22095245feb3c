"""Every answer a structure admits reads back: titles, line breaks, bullets (pure + llguidance).

One definition of a section title (``tasks.markdown.title_problem``, which the task
check applies): a title is accepted exactly when a memory written with it parses back.
The grammar writes titles verbatim, so every accepted title must read back from a
constrained full rewrite, a delta ``ADD`` and a JSON answer alike.
"""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_as_rnn.core import delta
from llm_as_rnn.core import memory as mem
from llm_as_rnn.runtime.schema import text_of
from llm_as_rnn.runtime.structure import LINE_BREAKS, line_breaks, operations, skeleton
from tests.conftest import accepted_titles, grammar_accepts

DECORATED = ["-DRAFT-", "[INTERNAL]", "NOTES:", "*KEY*", "`CODE`", "_X_", "NOTES: WIND", "C# X"]


def test_the_line_breaks_are_every_character_splitlines_breaks_on() -> None:
    assert line_breaks(sys.maxunicode) == LINE_BREAKS  # none beyond the BMP, where it is derived
    assert {"\n", "\r", "\u2028", "\u2029", "\x85"} <= set(LINE_BREAKS)


@pytest.mark.parametrize("brk", list(LINE_BREAKS))
def test_no_field_of_a_grammar_holds_a_line_break(brk: str) -> None:
    ops = operations(["PATTERNS"], [1], 256, lead=True)
    full = skeleton(["PATTERNS"], 256)
    assert ops is not None
    assert full is not None
    assert not grammar_accepts(ops, f"Feedback: early{brk}x\nNONE\n")
    assert not grammar_accepts(ops, f"Feedback: early\nADD PATTERNS: dry{brk}x\n")
    assert not grammar_accepts(ops, f"Feedback: early\nEDIT n1: dry{brk}x\n")
    assert not grammar_accepts(full, f"## PATTERNS\n- dry{brk}x\n")
    assert grammar_accepts(ops, "Feedback: early\nADD PATTERNS: dry x\n")  # the same, one line


@pytest.mark.parametrize("title", ["A\u2028B", "A\u2029B", "A\x85B", "A\u202eB", "A\x1cB"])
def test_a_title_that_cannot_read_back_is_refused(title: str) -> None:
    assert not accepted_titles(["PATTERNS", title])


@pytest.mark.parametrize("sections", [["NOTES", "NOTES:"], ["A", "a: B"], ["X", "X *: Y"]])
def test_a_title_another_opens_with_a_colon_is_refused(sections: list[str]) -> None:
    """``ADD A: B: x``: a note of ``A`` or of ``A: B``? The grammar could not write the first."""
    assert not accepted_titles(sections)


def reads_back(sections: list[str]) -> None:
    """Assert a grammar-admitted full rewrite, ADD and JSON answer land under ``sections``."""
    full = skeleton(sections, 4000)
    ops = operations(sections, [1], 4000)
    assert full is not None
    assert ops is not None
    old = mem.render_memory({name: f"- old {i}" for i, name in enumerate(sections)}, sections)
    answer = "".join(f"## {name}\n- new {i}\n" for i, name in enumerate(sections))
    assert grammar_accepts(full, answer)
    verdict = mem.guard(old, answer, sections, len)
    assert verdict.reason is None, verdict.reason
    assert verdict.memory == mem.render_memory(
        {name: f"- new {i}" for i, name in enumerate(sections)}, sections
    )
    for i, name in enumerate(sections):
        add = f"ADD {name}: lesson {i}\n"
        assert grammar_accepts(ops, add)
        applied = delta.apply(f"{old}".replace("- old", "- [n1] old", 1), add, sections)
        assert applied.memory is not None, applied.reason
        assert f"lesson {i}" in mem.parse_sections(applied.memory, sections)[name]
    as_json = {"sections": {name: [f"new {i}"] for i, name in enumerate(sections)}}
    text = text_of(full, json.dumps(as_json))
    assert text is not None
    assert mem.guard(old, text, sections, len).memory == verdict.memory


@pytest.mark.parametrize("title", DECORATED)
def test_a_decorated_title_reads_back_on_every_path(title: str) -> None:
    sections = ["PATTERNS", title, "OTHER"]
    assert accepted_titles(sections)
    reads_back(sections)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3, unique_by=str.upper))
def test_every_title_the_check_accepts_reads_back(sections: list[str]) -> None:
    if accepted_titles(sections):
        reads_back(sections)


def test_a_bullet_naming_a_section_stays_a_bullet() -> None:
    sections = ["PATTERNS", "RECENT ERRORS"]
    full = skeleton(sections, 256)
    assert full is not None
    answer = "## PATTERNS\n- RECENT ERRORS\n## RECENT ERRORS\n- Patterns:\n"
    assert grammar_accepts(full, answer)
    verdict = mem.guard("## PATTERNS\n- a\n## RECENT ERRORS\n- b", answer, sections, len)
    assert verdict.memory == "## PATTERNS\n- RECENT ERRORS\n\n## RECENT ERRORS\n- Patterns:"
