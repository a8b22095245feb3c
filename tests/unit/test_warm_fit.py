"""Warm start: what the thread starts from is what a reader is told, byte for byte."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

import llm_as_rnn
from llm_as_rnn import ConfigError, Context, DataError, OnlineLearner, read_trace, run_sequence
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.memfile import MemoryFile, content_hash, render
from llm_as_rnn.core.memory import render_memory
from llm_as_rnn.core.warm import read_import, read_memory_file
from llm_as_rnn.data import weather
from llm_as_rnn.errors import MemoryFitWarning
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.tasks import get_task
from tests.conftest import make_context

TASK = get_task("weather")
SEQ = weather.window(0, 12)
CANONICAL = render_memory(
    {"PATTERNS": "- rain follows rain", "RECENT ERRORS": "- none", "RULES OF THUMB": "- dry"},
    TASK.sections,
)


def exported(tmp_path: Path) -> Path:
    path = tmp_path / "s5.json"
    memory_file = MemoryFile(memory=CANONICAL, task="weather", origin={"thread": "T", "step": 5})
    path.write_text(render(memory_file), encoding="utf-8")
    return path


def test_export_import_export_through_threads_is_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "a.db")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    run = ["run", "--model", "fake", "--db", db]
    assert main([*run, "--steps", "4", "--thread", "A"]) == 0
    assert main(["memory", "export", "--db", db, "--thread", "A", "--out", str(first)]) == 0
    assert main([*run, "--steps", "2", "--thread", "B", "--init-memory", str(first)]) == 0
    export_b = ["memory", "export", "--db", db, "--thread", "B", "--step", "0"]
    assert main([*export_b, "--out", str(second)]) == 0
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (first, second))
    assert a["memory"].encode() == b["memory"].encode()
    assert a["sha256"] == b["sha256"] == content_hash(b["memory"])
    assert b["origin"]["thread"] == "B"
    assert b["origin"]["step"] == 0


@pytest.mark.parametrize(
    "given",
    [
        CANONICAL.replace("\n", "\r\n"),
        CANONICAL.replace("- none", "- none   "),
        CANONICAL.replace("## RECENT", "\n\n\n## RECENT") + "\n",
    ],
)
async def test_a_non_canonical_memory_is_canonicalised_with_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, given: str
) -> None:
    path = tmp_path / "hand.json"  # JSON keeps a CRLF that a text file read would drop
    path.write_text(render(MemoryFile(memory=given, task="weather")), encoding="utf-8")
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    with caplog.at_level(logging.INFO, logger="llm_as_rnn"):
        await run_sequence(
            g, SEQ[:1], thread_id="w", context=make_context(), initial_memory=read_memory_file(path)
        )
    said = [m for m in caplog.messages if "initial memory" in m]
    assert said == [
        "info: the initial memory (hand.json) is not in canonical form (spaces at line ends, "
        "CRLF, blank lines): it starts as its canonical text, sha256 "
        + content_hash(CANONICAL)[:12]
    ]
    assert (await read_trace(store, "w"))[0]["memory_before"] == CANONICAL
    imported = await read_import(store, "w")
    assert imported is not None
    assert imported["canonicalised"]
    assert not imported["fitted"]
    assert imported["sha256"] == content_hash(given)  # the memory as given: the identity's


async def test_over_budget_warning_names_the_sections_cut(tmp_path: Path) -> None:
    giant = CANONICAL.replace("- rain follows rain", "- " + "x" * 4000)
    path = tmp_path / "giant.md"
    path.write_text(giant, encoding="utf-8")
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    with pytest.warns(MemoryFitWarning) as caught:
        await run_sequence(
            g,
            SEQ[:1],
            thread_id="w",
            context=make_context(budget=64),
            initial_memory=read_memory_file(path),
        )
    said = [str(w.message) for w in caught]
    assert len(said) == 1
    assert f"is {approx_tokens(giant)} tokens, over the budget λ=64" in said[0]
    assert "(cut: PATTERNS; the longest sections first)" in said[0]
    start = (await read_trace(store, "w"))[0]["memory_before"]
    assert "- none" in start
    assert "- dry" in start


def test_a_resume_refusal_names_the_recorded_file_in_the_callers_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = exported(tmp_path)
    other = tmp_path / "other.md"
    other.write_text(CANONICAL.replace("- dry", "- wet"), encoding="utf-8")
    db = str(tmp_path / "r.db")
    run = ["run", "--model", "fake", "--steps", "2", "--db", db, "--thread"]
    assert main([*run, "w", "--init-memory", str(path)]) == 0
    assert main([*run, "cold"]) == 0
    capsys.readouterr()
    said = {}
    for case, flags in {
        "without the file": ["w"],
        "another file": ["w", "--init-memory", str(other)],
        "a file on a cold thread": ["cold", "--init-memory", str(path)],
    }.items():
        assert main([*run, *flags]) == 2, case
        said[case] = capsys.readouterr().err
    for case, err in said.items():
        assert err.count("\n") == 1, case
        assert err.count('"') % 2 == 0, case  # every quote closed
        assert "--thread NEW" in err, case
        assert "--allow-new-settings" in err, case
        assert "thread_id=" not in err, case
        assert "allow_new_settings=" not in err, case
    recorded = "the imported memory s5.json (sha256 " + content_hash(CANONICAL)[:12]
    assert f"{recorded}, origin thread T step 5): give the same one" in said["without the file"]
    assert f"--init-memory {path.name}" in said["without the file"]
    assert "its h_0 is behind it" in said["another file"]
    assert "its h_0 is behind it" in said["a file on a cold thread"]


async def test_the_library_says_the_refusal_in_python_words() -> None:
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    given = MemoryFile(memory=CANONICAL, task="weather", source="s5.json")
    await run_sequence(g, SEQ[:1], thread_id="w", context=make_context(), initial_memory=given)
    with pytest.raises(ConfigError) as refused:
        await run_sequence(g, SEQ[:2], thread_id="w", context=make_context())
    said = str(refused.value)
    assert "thread_id=NEW" in said
    assert "allow_new_settings=True" in said
    assert "initial_memory=read_memory_file('s5.json')" in said
    assert "--" not in said


def test_a_path_given_as_the_memory_text_says_how_to_read_a_file(tmp_path: Path) -> None:
    path = tmp_path / "learned.md"
    path.write_text(CANONICAL, encoding="utf-8")
    says = r"initial_memory is memory text, and .*learned\.md' names a file: to read a file use "
    says += r"read_memory_file\(path\)"
    with pytest.raises(DataError, match=says):
        OnlineLearner(Context(model="fake", budget=512), initial_memory=str(path))
    with pytest.raises(ConfigError, match=says):
        Context(model="fake", initial_memory=str(path))
    with pytest.raises(ConfigError, match="give its text, a MemoryFile, or read_memory_file"):
        Context(model="fake", initial_memory=path)  # type: ignore[arg-type]
    read = llm_as_rnn.read_memory_file(path)  # the public way, and a MemoryFile is taken whole
    assert isinstance(read, llm_as_rnn.MemoryFile)
    assert Context(model="fake", initial_memory=read).initial_memory == CANONICAL  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"no such file: give a memory file \(`llm-as-rnn memory"):
        read_memory_file(tmp_path / "nofile.json")


def test_memory_before_the_first_step_is_the_fitted_h0_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "giant.md"
    path.write_text(CANONICAL.replace("- rain follows rain", "- " + "x" * 4000), encoding="utf-8")
    learner = OnlineLearner(make_context(budget=64), initial_memory=read_memory_file(path))
    with pytest.warns(MemoryFitWarning, match=r"over the budget λ=64: .*\(cut: PATTERNS"):
        before = learner.memory("u")
    assert approx_tokens(before) <= 64
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        learner.predict("u", SEQ[0]["input"])
        learner.learn("u", SEQ[0]["target"])
    assert not [w for w in again if issubclass(w.category, MemoryFitWarning)]  # said once
    assert learner.history("u")[0]["memory_before"] == before  # what the step read


def test_the_cli_prints_the_fit_warning_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "giant.md"
    path.write_text(CANONICAL.replace("- rain follows rain", "- " + "x" * 4000), encoding="utf-8")
    db = str(tmp_path / "w.db")
    argv = ["run", "--model", "fake", "--steps", "1", "--budget", "64", "--db", db]
    assert main([*argv, "--init-memory", str(path)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "over the budget" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning: the initial memory (giant.md) is ")
    assert main([*argv, "--thread", "o", "--init-memory", str(exported(tmp_path))]) == 0
    started = [line for line in capsys.readouterr().err.splitlines() if "starting from" in line]
    assert started == [
        f"info: starting from s5.json (origin thread T step 5, {approx_tokens(CANONICAL)} tokens)"
    ]
