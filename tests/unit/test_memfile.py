"""The portable memory file: canonical, lossless, and every bad file one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_as_rnn.core import memfile, warm
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
        (bad(budget="300"), "'budget' must be a whole number"),
        (bad(budget=True), "'budget' must be a whole number"),
        (bad(tokens=4.5), "'tokens' must be a whole number"),
        (bad(task=7), "'task' must be a name"),
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
    with pytest.raises(DataError, match="headings of no section of this task: ## TRENDS"):
        memfile.check_for_task(MemoryFile(memory=MEMORY + "\n## TRENDS\n- x"), "weather", SECTIONS)


def test_hash_signs_and_numbers_in_a_body_are_not_headers() -> None:
    memory = MEMORY + "\n#1 rule: rain after a #dry spell\n#\n- ok ##"
    assert memfile.memory_problems(memory, SECTIONS) == []
    assert memfile.memory_problems(MEMORY + "\n### Notes", SECTIONS) == [
        "headings of no section of this task: ### Notes"
    ]


NESTED = '{"format":"llm-as-rnn.memory","version":1,"memory":"x","origin":' + "[" * 100_000


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (NESTED, "not valid JSON (nested too deep)"),
        ("[" * 100_000, "not valid JSON"),
        (bad(budget=0).replace(": 0", ": " + "9" * 5000), "not valid JSON"),
        ("[1, 2]", "JSON but not a memory file"),
        ("42", "JSON but not a memory file"),
        ('"## PATTERNS"', "JSON but not a memory file"),
        ("null", "JSON but not a memory file"),
        (bad(budget=-5), "'budget' must be a whole number 1.."),
        (bad(budget=0), "'budget' must be a whole number 1.."),
        (bad(tokens=10**30), "'tokens' must be a whole number 0.."),
        (bad(tokens=-1), "'tokens' must be a whole number 0.."),
        (bad(task=""), "'task' must be a name"),
        (bad(tokenizer="x" * 1000), "'tokenizer' must be a name"),
        (bad(sections=[]), '"sections" must be a list'),
        (bad(origin={"thread": "t" * 100_000, "step": 5}), "too long"),
        (bad(origin={"thread": "t", "step": -1}), "'step' must be a whole number 0.."),
        (bad(origin={"thread": "t", "step": True}), "'step' must be a whole number"),
        (bad(origin={"thread": 7}), "is not a name"),
        (bad(origin={"thread": "t", "mine": 1}), '"origin" must be an object of'),
        (bad(origin={"settings": ["x"]}), "'settings' must be a name"),
        (bad(origin={"imported_from": {"step": -2}}), "'step' must be a whole number"),
    ],
)
def test_hostile_or_nonsense_files_are_one_line_data_errors(text: str, says: str) -> None:
    with pytest.raises(DataError) as raised:
        parse(text, "m.json")
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    with open(path, "wb") as f:
        f.truncate(memfile.MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(DataError, match="is over"):
        warm.read_memory_file(path)


def test_one_reader_reads_a_bom_file(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf" + MEMORY.encode())
    assert warm.read_memory_file(path).memory == MEMORY


SHAPES = {
    "a section twice": MEMORY + "\n## PATTERNS\n- again",
    "out of order": "## RECENT ERRORS\n- b\n## PATTERNS\n- a\n## RULES OF THUMB\n- c",
    "setext heading": MEMORY + "\nEXTRA\n=====",
    "setext heading with dashes": MEMORY + "\nEXTRA\n---",
    "html heading": MEMORY + "\n<h2>EXTRA</h2>",
    "html heading, upper case": MEMORY + '\n<H3 class="x">EXTRA</H3>',
    "headers only": "## PATTERNS\n## RECENT ERRORS\n\n## RULES OF THUMB\n",
    "a loose header": MEMORY.replace("## RECENT ERRORS", "**Recent errors:**"),
    "text before the first header": "Here are my notes\n" + MEMORY,
    "another task's section": MEMORY + "\n## MY NOTES\n- x",
}


@pytest.mark.parametrize("name", SHAPES)
def test_a_memory_of_another_shape_is_refused(name: str) -> None:
    with pytest.raises(DataError, match="does not fit task 'weather'"):
        memfile.check_for_task(MemoryFile(memory=SHAPES[name]), "weather", SECTIONS)


def test_a_list_then_a_rule_is_not_a_heading() -> None:
    assert memfile.memory_problems(MEMORY + "\n- item\n---\n- more", SECTIONS) == []


@pytest.mark.parametrize("memory", ODD[:3])
def test_an_accepted_memory_is_canonical(memory: str) -> None:
    """Line ends, trailing spaces, blank lines and a final newline are the writer's."""
    made = memfile.check_for_task(MemoryFile(memory=memory), "weather", SECTIONS).memory
    assert "\r" not in made
    assert not made.endswith("\n")
    assert all(line == line.rstrip() for line in made.split("\n"))
    messy = memory.replace("\n", " \r\n") + "\n\n"
    assert memfile.check_for_task(MemoryFile(memory=messy), "weather", SECTIONS).memory == made
    assert memfile.canonical(made, SECTIONS) == made
