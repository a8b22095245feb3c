"""Pure memory functions: sections, truncation, invariant, collapse guard."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_as_rnn.core import memory as mem

SECTIONS = ("PATTERNS", "RECENT ERRORS", "RULES OF THUMB")


def words(text: str) -> int:
    """A simple token counter: whitespace-separated words."""
    return len(text.split())


def chars(text: str) -> int:
    return (len(text) + 2) // 3


def test_parse_tolerates_decorated_headers_and_preamble() -> None:
    raw = (
        "Here is the updated memory:\n```\n**PATTERNS:**\n- a\n# Recent errors\n- b\n"
        "RULES OF THUMB\n- c\n```"
    )
    assert mem.parse_sections(raw, SECTIONS) == {
        "PATTERNS": "- a",
        "RECENT ERRORS": "- b",
        "RULES OF THUMB": "- c",
    }
    assert mem.normalize(raw, SECTIONS) == (
        "## PATTERNS\n- a\n\n## RECENT ERRORS\n- b\n\n## RULES OF THUMB\n- c"
    )


def test_unknown_or_truncated_headers_are_not_content() -> None:
    raw = "## PATTERNS\n## RECENT ER\n\n## RECENT ERRORS\n### Notes\n- kept\n## RULES OF THUMB"
    assert mem.parse_sections(raw, SECTIONS) == {
        "PATTERNS": "",
        "RECENT ERRORS": "- kept",
        "RULES OF THUMB": "",
    }
    verdict = mem.guard(
        mem.render_memory({}, SECTIONS),
        "## PATTERNS\n## RECENT ER\n## RECENT ERRORS\n## RULES OF THUMB",
        SECTIONS,
        words,
    )
    assert verdict.reason == "rewrite has only empty sections"


def test_normalize_without_headers_is_none() -> None:
    assert mem.normalize("just some prose", SECTIONS) is None


def test_missing_sections_and_violations() -> None:
    text = "## PATTERNS\n- a"
    assert mem.missing_sections(text, SECTIONS) == ["RECENT ERRORS", "RULES OF THUMB"]
    problems = mem.invariant_violations(text, SECTIONS, 1, words)
    assert any("missing" in p for p in problems)
    assert any("over the budget" in p for p in problems)
    assert mem.invariant_violations("", SECTIONS, 10, words)[0] == "memory is empty"


def test_truncate_keeps_headers_and_fits() -> None:
    body = " ".join(f"w{i}" for i in range(100))
    text = mem.render_memory({s: body for s in SECTIONS}, SECTIONS)
    out = mem.truncate(text, SECTIONS, 40, words)
    assert words(out) <= 40
    assert mem.missing_sections(out, SECTIONS) == []
    # every section keeps the same number of leading words (no starving)
    kept = [len(b.split()) for b in mem.parse_sections(out, SECTIONS).values()]
    assert max(kept) - min(kept) <= 1
    assert "w0" in out


def test_truncate_is_identity_when_within_budget() -> None:
    text = mem.render_memory({s: "- short" for s in SECTIONS}, SECTIONS)
    assert mem.truncate(text, SECTIONS, 100, words) == text


def test_truncate_refuses_budget_below_headers() -> None:
    floor = mem.min_budget(SECTIONS, words)
    with pytest.raises(ValueError, match="cannot hold"):
        mem.truncate("## PATTERNS\n- a", SECTIONS, floor - 1, words)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=3000),
    budget=st.integers(min_value=0, max_value=400),
    counter=st.sampled_from([words, chars]),
)
def test_truncate_invariant_for_any_text(text: str, budget: int, counter: mem.TokenCounter) -> None:
    floor = mem.min_budget(SECTIONS, counter)
    budget = max(budget, floor)
    out = mem.truncate(text, SECTIONS, budget, counter)
    assert mem.invariant_violations(out, SECTIONS, budget, counter) == []


def test_truncate_cuts_a_giant_word_and_keeps_the_small_sections() -> None:
    # one 400,000-character word used to empty every section (each kept its first 0 words)
    bodies = {"PATTERNS": "- " + "x" * 400_000, "RECENT ERRORS": "- wet", "RULES OF THUMB": "- dry"}
    text = mem.render_memory(bodies, SECTIONS)
    out = mem.truncate(text, SECTIONS, 30, chars)
    kept = mem.parse_sections(out, SECTIONS)
    assert chars(out) <= 30
    assert kept["RECENT ERRORS"] == "- wet"
    assert kept["RULES OF THUMB"] == "- dry"
    assert kept["PATTERNS"].startswith("- x")
    assert mem.cut_sections(text, out, SECTIONS) == ["PATTERNS"]


_WORDS = st.lists(st.text(alphabet="abc", min_size=1, max_size=80), max_size=12)
_BODY = _WORDS.map(" ".join)


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.tuples(_BODY, _BODY, _BODY),
    budget=st.integers(min_value=0, max_value=300),
    counter=st.sampled_from([words, chars]),
)
def test_truncate_shares_the_budget(
    bodies: tuple[str, str, str], budget: int, counter: mem.TokenCounter
) -> None:
    given_bodies = dict(zip(SECTIONS, bodies, strict=True))
    text = mem.render_memory(given_bodies, SECTIONS)
    given_bodies = mem.parse_sections(text, SECTIONS)  # as the memory reads
    budget = max(budget, mem.min_budget(SECTIONS, counter))
    out = mem.truncate(text, SECTIONS, budget, counter)
    assert counter(out) <= budget
    headers = [line for line in out.splitlines() if line.startswith("## ")]
    assert headers == [mem.header(s) for s in SECTIONS]  # every header, in order
    kept = mem.parse_sections(out, SECTIONS)
    for name in SECTIONS:
        assert given_bodies[name].startswith(kept[name])  # a prefix of what it had
    for cut in (n for n in SECTIONS if kept[n] != given_bodies[n]):
        longest_word = max((len(w) for w in given_bodies[cut].split()), default=0)
        for other in SECTIONS:  # no section keeps more than a cut one's share (one word)
            assert len(kept[other]) <= len(kept[cut]) + longest_word + 1
        if not kept[cut]:  # emptied only when every section is, and a character each is over
            assert not any(kept.values())
            firsts = {name: body[:1] for name, body in given_bodies.items()}
            assert counter(mem.render_memory(firsts, SECTIONS)) > budget


OLD = mem.render_memory(
    {s: "\n".join(f"- lesson {i} about {s.lower()}" for i in range(6)) for s in SECTIONS}, SECTIONS
)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty rewrite"),
        ("   \n", "empty rewrite"),
        ("I cannot do that.", "unparseable"),
        ("## PATTERNS\n- a\n## RULES OF THUMB\n- b", "dropped sections: RECENT ERRORS"),
        ("## PATTERNS\n## RECENT ERRORS\n## RULES OF THUMB", "only empty sections"),
        ("## PATTERNS\n- a\n## RECENT ERRORS\n- b\n## RULES OF THUMB\n- c", "drastic shrink"),
        (
            "## PATTERNS\n- a long enough line of text to avoid shrink issues here\n"
            "## RECENT ERRORS\n- another reasonably long line of text for the memory\n"
            "## RULES OF THUMB\nUse short bullet points, under 57 words. Output only the memory.",
            "echoes the prompt",
        ),
    ],
)
def test_guard_rejects(raw: str, reason: str) -> None:
    verdict = mem.guard(OLD, raw, SECTIONS, words)
    assert verdict.memory is None
    assert verdict.reason is not None
    assert reason in verdict.reason


def test_guard_accepts_a_real_rewrite() -> None:
    raw = OLD.replace("lesson 0", "revised lesson")
    verdict = mem.guard(OLD, raw, SECTIONS, words)
    assert verdict.reason is None
    assert verdict.memory is not None
    assert "revised lesson" in verdict.memory


def test_diff_lines() -> None:
    assert mem.diff_lines("a\nb", "a\nc") == ["@@ -1,2 +1,2 @@", " a", "-b", "+c"]
    assert mem.diff_lines("a", "a") == []
