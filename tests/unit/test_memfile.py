"""The portable memory file: canonical, lossless, and every bad file one line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_as_rnn.core import memfile
from llm_as_rnn.core.memfile import MemoryFile, content_hash, parse, render
from llm_as_rnn.core.state import blank
from llm_as_rnn.errors import DataError

SECTIONS = ("PATTERNS", "RECENT ERRORS", "RULES OF THUMB")
MEMORY = "## PATTERNS\n- a\n\n## RECENT ERRORS\n- b\n\n## RULES OF THUMB\n- c"
ODD = [
    MEMORY,
    "## PATTERNS\n- pluie à Zürich ☔ 雨\n\n## RECENT ERRORS\n\t- tab\r\n\n## RULES OF THUMB\n",
    '## PATTERNS\n- "quoted" \\ back\\slash \u2028 line sep\n## RECENT ERRORS\n## RULES OF THUMB',
    "  lead\n## PATTERNS\n- 🌧️ emoji + ZWJ 👩‍🔬\n## RECENT ERRORS\n## RULES OF THUMB\n\n\n",
]


def exported(memory: str = MEMORY, **fields: object) -> MemoryFile:
    base: dict[str, object] = {
        "task": "weather",
        "sections": SECTIONS,
        "budget": 300,
        "tokenizer": "fake",
        "tokens": 42,
        "origin": {"thread": "t/é", "step": 5, "settings": "abc123"},
    }
    return MemoryFile(memory=memory, **{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize("memory", ODD)
def test_round_trip_is_lossless_both_ways(memory: str) -> None:
    f = exported(memory)
    text = render(f)
    assert parse(text) == f
    assert parse(text).memory.encode() == memory.encode()  # byte for byte
    assert render(parse(text)) == text
    assert not parse(text).edited


@settings(max_examples=60, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(lambda t: not blank(t))
)
def test_any_memory_text_survives(memory: str) -> None:
    f = exported(memory)
    assert parse(render(f)) == f
    assert render(parse(render(f))) == render(f)


def test_render_is_canonical() -> None:
    text = render(exported())
    document = json.loads(text)
    assert list(document) == [
        "format",
        "version",
        "memory",
        "sha256",
        "task",
        "sections",
        "budget",
        "tokenizer",
        "tokens",
        "origin",
    ]
    assert text == json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    assert document["sha256"] == content_hash(MEMORY)
    assert "é" in text  # UTF-8, not \u escapes
    assert render(exported(source="file.json")) == text  # where it was read is not content


def test_hash_mismatch_is_accepted_as_edited() -> None:
    document = json.loads(render(exported()))
    document["memory"] = MEMORY + "\n- a note by hand"
    f = parse(json.dumps(document))
    assert f.edited
    assert f.memory.endswith("by hand")


def test_plain_text_is_a_memory_alone() -> None:
    f = parse(MEMORY)
    assert f == MemoryFile(memory=MEMORY)
    assert f.task is None
    assert not f.edited


def bad(**changes: object) -> str:
    document = json.loads(render(exported()))
    document.update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("  \n\t", "is empty"),
        ('{"format": "llm-as-rnn.memory", "version": 1, "memory": ', "not valid JSON"),
        ('{"memory": "## PATTERNS"}', "not a memory file"),
        ("{}", "not a memory file"),
        (bad(version=2), "format version 2"),
        (bad(version="1"), "format version '1'"),
        (bad(version=True), "format version True"),
        (bad(version=1.0), "format version 1.0"),
        (bad(version=None), "format version None"),
        (bad(memory=""), "no memory text"),
        (bad(memory=["## PATTERNS"]), "no memory text"),
        (bad(sections="PATTERNS"), '"sections" must be a list'),
        (bad(sections=[1, 2]), '"sections" must be a list'),
        (bad(origin=[]), '"origin" must be an object'),
        (bad(origin="thread t"), '"origin" must be an object'),
        (bad(budget="300"), "'budget' must be int"),
        (bad(budget=True), "'budget' must be int"),
        (bad(tokens=4.5), "'tokens' must be int"),
        (bad(task=7), "'task' must be str"),
        (render(exported()).replace('"## PATTERNS', '"\\ud800## PATTERNS'), "not valid Unicode"),
    ],
)
def test_bad_files_are_one_line_data_errors(text: str, says: str) -> None:
    with pytest.raises(DataError) as raised:
        parse(text, "m.json")
    message = str(raised.value)
    assert says in message
    assert message.startswith("m.json")
    assert "\n" not in message


def test_check_for_task_refuses_another_task_or_other_sections() -> None:
    memfile.check_for_task(exported(), "weather", SECTIONS)
    with pytest.raises(DataError, match="learned on task 'weather', not 'sp500'"):
        memfile.check_for_task(exported(), "sp500", SECTIONS)
    with pytest.raises(DataError, match="sections"):
        memfile.check_for_task(exported(sections=("A", "B")), "weather", SECTIONS)
    with pytest.raises(DataError, match="missing sections: RULES OF THUMB"):
        memfile.check_for_task(MemoryFile(memory=MEMORY[:40]), "weather", SECTIONS)
    with pytest.raises(DataError, match="sections of another task: TRENDS"):
        memfile.check_for_task(MemoryFile(memory=MEMORY + "\n## TRENDS\n- x"), "weather", SECTIONS)


def test_hash_signs_and_numbers_in_a_body_are_not_headers() -> None:
    memory = MEMORY + "\n#1 rule: rain after a #dry spell\n#\n- ok ##"
    assert memfile.memory_problems(memory, SECTIONS) == []
    assert memfile.memory_problems(MEMORY + "\n### Notes", SECTIONS) == [
        "sections of another task: Notes"
    ]
