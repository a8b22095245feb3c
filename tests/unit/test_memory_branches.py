"""Every branch, rewind and edit stays readable; refusals write nothing; API arguments checked."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn import memory
from llm_as_rnn.core.memfile import parse
from llm_as_rnn.errors import ConfigError, DataError
from llm_as_rnn.frontends.cli import main
from tests.unit.test_memory_history import RUN

ADDED = "## RULES OF THUMB\n- None yet."


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Return a database holding a 10-step fake thread ``a``."""
    path = str(tmp_path / "t.db")
    assert main([*RUN, "--db", path]) == 0
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run one command; return its exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def edited(db: str, rule: str) -> str:
    """Return the thread's current memory with one more rule of thumb."""
    return memory.show(db, "a").replace(ADDED, f"{ADDED}\n- {rule}")


def test_every_old_branch_rewind_and_edit_stays_readable(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {v.step: v.memory for v in memory.log(db, "a")}
    memory.rewind(db, "a", 5)
    memory.rewind(db, "a", 3)
    memory.edit(db, "a", edited(db, "by hand"))
    memory.rewind(db, "a", 2)
    found = memory.log(db, "a", all_branches=True)
    kept = sorted((v.step, v.made) for v in found if v.branch is not None)
    steps = [step for step, made in kept if made not in ("rewind", "edit")]
    assert steps == [3, 4, 5, 6, 7, 8, 9, 10]  # each old step once
    assert [made for _, made in kept].count("rewind") == 2  # 10->5 and 5->3 (the fork holds 3->2)
    assert [made for _, made in kept].count("edit") == 1
    assert all(old[v.step] == v.memory for v in found if v.branch and v.made not in ("edit",))
    code, out, _ = cli(capsys, "memory", "log", "--db", db, "--thread", "a", "--all")
    assert code == 0
    branches = set(re.findall(r"^\[([0-9a-f]{8})\]", out, re.M))
    assert len(branches) == 3
    code, out, _ = cli(capsys, "trace", "--db", db, "--thread", "a")
    lines = ("rewound after step 5", "rewound after step 3", "rewound after step 2", "human edit")
    assert all(line in out for line in lines)
    assert "+- by hand" in out  # the edit with its diff
    assert branches <= set(re.findall(r"old branch ([0-9a-f]{8})", out)) | branches
    page = tmp_path / "p.html"
    assert main(["trace", "--db", db, "--thread", "a", "--html", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert all(line in html for line in lines)
    for branch in branches - set(re.findall(r"old branch ([0-9a-f]{8})", html)):
        assert main(["memory", "show", "--db", db, "--thread", "a", "--branch", branch]) == 0


def test_an_old_branch_can_be_read(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = {v.step: v.memory for v in memory.log(db, "a")}
    memory.rewind(db, "a", 5)
    code, _, err = cli(capsys, "memory", "show", "--db", db, "--thread", "a", "--step", "8")
    assert code == 2
    assert "memory log --all" in err
    (branch,) = {v.branch for v in memory.log(db, "a", all_branches=True) if v.branch}
    argv = ["memory", "show", "--db", db, "--thread", "a", "--branch", branch, "--step", "8"]
    code, out, _ = cli(capsys, *argv)
    assert (code, out) == (0, old[8] + "\n")
    assert memory.show(db, "a", 2, branch=branch) == old[2]
    assert memory.export(db, "a", 10, branch=branch).memory == old[10]
    assert memory.diff(db, "a", 8, 9, branch=branch) == memory.diff(db, "a", 8, 9, branch=branch)
    code, _, err = cli(capsys, "memory", "show", "--db", db, "--thread", "a", "--branch", "nope")
    assert code == 2
    assert branch in err


def test_edits_after_one_step_show_in_time_order(db: str, tmp_path: Path) -> None:
    for n in range(5):
        memory.edit(db, "a", edited(db, f"rule number {n}"))
    page = tmp_path / "p.html"
    assert main(["trace", "--db", db, "--thread", "a", "--html", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    sections = re.findall(r'<section class="event edit".*?</section>', html, re.S)
    newest = [max(int(n) for n in re.findall(r"rule number (\d)", s)) for s in sections]
    assert newest == [0, 1, 2, 3, 4]


def test_an_unchanged_edit_is_refused(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, shown, _ = cli(capsys, "memory", "show", "--db", db, "--thread", "a")
    same = tmp_path / "same.md"
    for text in (shown, shown.replace("\n", " \r\n"), "\ufeff" + shown + "\n\n"):
        same.write_bytes(text.encode())
        argv = ["memory", "edit", "--db", db, "--thread", "a", "--from-file", str(same)]
        code, _, err = cli(capsys, *argv)
        assert code == 2
        assert "the memory is unchanged: nothing to record" in err
    same.write_text(shown.replace(ADDED, ADDED + "\n- mine   "), encoding="utf-8")
    assert main(["memory", "edit", "--db", db, "--thread", "a", "--from-file", str(same)]) == 0
    assert memory.show(db, "a").endswith("- mine")


def test_export_import_export_is_byte_identical_through_threads(db: str, tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    memory.export(db, "a", 5, first)
    run = ["run", "--model", "fake", "--task", "weather", "--steps", "1", "--db", db]
    assert main([*run, "--thread", "b", "--init-memory", str(first)]) == 0
    second = memory.export(db, "b", 0)
    assert second.memory.encode() == parse(first.read_text(encoding="utf-8")).memory.encode()
    assert second.origin["imported_from"] == {**parse(first.read_text()).origin}
    memory.export(db, "b", 0, tmp_path / "b.json")
    assert main([*run, "--thread", "c", "--init-memory", str(tmp_path / "b.json")]) == 0
    third = memory.export(db, "c", 0)
    assert third.sha256 == second.sha256 == hashlib.sha256(second.memory.encode()).hexdigest()
    assert third.origin["imported_from"]["imported_from"]["thread"] == "a"


def sizes(folder: Path) -> dict[str, bytes]:
    """Return every file under ``folder`` and its bytes."""
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("verb", ["log", "show", "diff", "export", "rewind", "edit"])
def test_a_missing_database_or_thread_is_refused_unwritten(
    verb: str, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memo = tmp_path / "m.md"
    memo.write_text(memory.show(db, "a"), encoding="utf-8")
    extra = {
        "diff": ["--from", "1"],
        "rewind": ["--to-step", "1"],
        "edit": ["--from-file", str(memo)],
    }
    messages = set()
    for where, thread in ((str(tmp_path / "missing.db"), "a"), (db, "nope")):
        before = sizes(tmp_path)
        argv = ["memory", verb, "--db", where, "--thread", thread, *extra.get(verb, [])]
        code, _, err = cli(capsys, *argv)
        assert code == 2
        assert err.count("\n") == 1
        assert sizes(tmp_path) == before
        messages.add(err)
    assert f"no steps for thread 'nope' in {db}: run `llm-as-rnn trace --db {db}`" in "".join(
        messages
    )


CALLS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "log": (lambda db, a: memory.log(db, a["thread"], all_branches=a["flag"]), ("flag",)),
    "show": (lambda db, a: memory.show(db, a["thread"], a["step"]), ("step",)),
    "diff": (lambda db, a: memory.diff(db, a["thread"], 0, a["step"]), ("step",)),
    "export": (lambda db, a: memory.export(db, a["thread"], a["step"], a["out"]), ("step", "out")),
    "rewind": (lambda db, a: memory.rewind(db, a["thread"], a["step"]), ("step",)),
    "edit": (lambda db, a: memory.edit(db, a["thread"], a["memory"]), ("memory",)),
}
GOOD = {"thread": "a", "step": 1, "flag": False, "out": None, "memory": "x"}
BAD = {
    "thread": [5, None, b"a", ""],
    "step": [True, 3.0, "3", -1],
    "flag": [1, "yes"],
    "out": [123, b"x"],
    "memory": [None, b"## PATTERNS", 7],
}


@pytest.mark.parametrize("name", CALLS)
def test_api_arguments_of_a_wrong_type_are_config_errors(name: str, db: str) -> None:
    call, uses = CALLS[name]
    for argument in ("thread", *uses):
        for value in BAD[argument]:
            with pytest.raises(ConfigError) as raised:
                call(db, {**GOOD, argument: value})
            assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="invalid db"):
        call(None, GOOD)
    with pytest.raises(ConfigError, match="to_step"):
        memory.rewind(db, "a", None)  # type: ignore[arg-type]
    assert memory.show(db, "a", 3) == memory.log(db, "a")[3].memory  # still works
    assert not ({"asyncio", "os"} & set(memory.__all__))


def test_diff_of_no_step_is_refused(db: str) -> None:
    with pytest.raises(ConfigError, match="from_step"):
        memory.diff(db, "a", None)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        memory.edit(db, "a", "## PATTERNS\n## PATTERNS")


def test_a_warm_start_is_visible_in_log_trace_and_page(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "m.json"
    memory.export(db, "a", 5, file)
    run = ["run", "--model", "fake", "--task", "weather", "--steps", "1", "--db", db]
    assert main([*run, "--thread", "w", "--init-memory", str(file)]) == 0
    said = "imported from thread 'a' step 5, file m.json"
    assert said in cli(capsys, "memory", "log", "--db", db, "--thread", "w")[1].splitlines()[0]
    assert f"h_0 {said}" in cli(capsys, "trace", "--db", db, "--thread", "w")[1]
    page = tmp_path / "p.html"
    assert main(["trace", "--db", db, "--thread", "w", "--html", str(page)]) == 0
    assert f"h_0 {said}" in page.read_text(encoding="utf-8").replace("&#x27;", "'")


def test_an_edit_after_a_rewind_to_h0_keeps_the_h0_row(db: str) -> None:
    h0 = memory.show(db, "a", 0)
    memory.rewind(db, "a", 0)
    memory.edit(db, "a", h0.replace(ADDED, f"{ADDED}\n- written by hand"))
    versions = memory.log(db, "a")
    assert [v.made for v in versions] == ["h0", "rewind", "edit"]
    assert versions[0].memory == h0  # the row of h_0 is h_0, not the edit after it
    assert "written by hand" in versions[-1].memory


@pytest.mark.parametrize("bad", ["\x1b[31mred\x1b[0m", "bell\x07", "nul\x00", "\u202eevil"])
def test_control_characters_never_reach_a_memory(db: str, bad: str) -> None:
    before = memory.show(db, "a")
    with pytest.raises(DataError, match="control character"):
        memory.edit(db, "a", edited(db, bad))
    assert memory.show(db, "a") == before
    # a model's stray control codes are dropped from what it writes
    from llm_as_rnn.core.memory import normalize

    text = f"## PATTERNS\n- {bad}\n## RECENT ERRORS\n- x\n## RULES OF THUMB\n- y"
    canonical = normalize(text, ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB"])
    assert canonical is not None
    assert not any(c in canonical for c in "\x1b\x07\x00\u202e")
