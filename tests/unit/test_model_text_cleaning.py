"""Model text reaches a memory or a feedback clean: no control codes, no half characters.

A field's token bound can end it mid-character (its bytes decode to U+FFFD); a judge
can write ESC or a bidirectional override as well as a rewriter can. Every path strips
both, as the memory path does; and the compiled grammars a process keeps are bounded.
"""

from __future__ import annotations

import pytest

from llm_as_rnn.core import delta
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.feedback import fused_feedback, judge_feedback, truth_feedback
from llm_as_rnn.tasks import Score

SECTIONS = ["PATTERNS", "RECENT ERRORS"]
OLD = "## PATTERNS\n- [n1] dry spells\n## RECENT ERRORS\n- [n2] missed a front"
HOSTILE = "\x1b\u202e\x07\x9b"  # ESC, RIGHT-TO-LEFT OVERRIDE, BEL, CSI


def cut(text: str, char: str = "é") -> str:
    """Return ``text`` then the first byte of ``char``, decoded as a tokenizer does it."""
    return (text.encode() + char.encode()[:1]).decode(errors="replace")


@pytest.mark.parametrize("char", ["é", "雨", "🌧"])
def test_a_field_cut_mid_character_loses_the_half_character(char: str) -> None:
    bullet = cut("## PATTERNS\n- fronts bring rain ", char)
    full = mem.guard(OLD, f"{bullet}\n## RECENT ERRORS\n- " + cut("late", char), SECTIONS, len)
    assert full.memory == "## PATTERNS\n- fronts bring rain\n\n## RECENT ERRORS\n- late"
    applied = delta.apply(OLD, cut("ADD PATTERNS: wind turns ", char) + "\n", SECTIONS)
    assert applied.memory is not None
    assert "\ufffd" not in applied.memory
    assert "- [n3] wind turns" in applied.memory
    truth = {"text": "Wrong.", "source": "truth", "correct": False, "error": 1.0, "verdict": None}
    lead = fused_feedback(truth, cut("Feedback: watch the wind", char) + "\nNONE")  # type: ignore[arg-type]
    assert lead["text"] == "Wrong. Lesson: watch the wind"


def test_judge_fields_and_lessons_hold_no_control_characters() -> None:
    said = f"Verdict: plausible\nWrong if: rain{HOSTILE}\nRelied on: wind\nLesson: fronts{HOSTILE}"
    judged = judge_feedback(said, "plausible", Score(None, None))
    assert (
        judged["text"] == "Judge verdict: plausible. Wrong if: rain Relied on: wind Lesson: fronts"
    )
    taught = truth_feedback("Wrong.", Score(False, 1.0), f"Watch{HOSTILE} the wind")
    assert taught["text"] == "Wrong. Lesson: Watch the wind"


def test_the_compiled_grammars_kept_are_bounded() -> None:
    pytest.importorskip("llguidance", reason="constrained decoding needs llguidance (the hf extra)")
    from llm_as_rnn.runtime.grammar import COMPILED, compiled
    from llm_as_rnn.runtime.structure import operations

    compiled.cache_clear()
    for first in range(COMPILED + 8):  # a delta structure per step: its ids move on
        shape = operations(SECTIONS, [first, first + 1], 256)
        assert shape is not None
        compiled(shape)
    assert compiled.cache_info().currsize == COMPILED
