"""``llm-as-rnn memory``: versions, export, rewind and edit on a 10-step fake thread."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from llm_as_rnn import memory
from llm_as_rnn.core.memfile import parse
from llm_as_rnn.errors import ConfigError, DataError
from llm_as_rnn.frontends.cli import main

RUN = ["run", "--model", "fake", "--task", "weather", "--steps", "10", "--thread", "a"]


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Return a database holding a 10-step fake thread ``a``."""
    path = str(tmp_path / "t.db")
    assert main([*RUN, "--db", path]) == 0
    return path


def rows(db: str) -> list[tuple[object, ...]]:
    """Return every checkpoint and store row, to compare before and after a refusal."""
    with sqlite3.connect(db) as conn:
        return (
            conn.execute("SELECT * FROM checkpoints").fetchall()
            + conn.execute("SELECT prefix, key, value FROM store").fetchall()
        )


def test_log_lists_every_version(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["memory", "log", "--db", db, "--thread", "a"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11
    assert "h_0" in lines[0]
    assert "step   10" in lines[-1]
    assert [v.step for v in memory.log(db, "a")] == list(range(11))


def test_export_step_5_is_the_traces_memory(db: str, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert (
        main(["memory", "export", "--db", db, "--thread", "a", "--step", "5", "--out", str(out)])
        == 0
    )
    exported = parse(out.read_text(encoding="utf-8"))
    step5 = next(v for v in memory.log(db, "a") if v.step == 5)
    assert step5.record is not None
    assert exported.memory == step5.record["memory_after"]
    assert exported.origin["step"] == 5
    assert not exported.edited
    assert exported.task == "weather"


def test_rewind_then_run_recomputes(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {v.step: v.record for v in memory.log(db, "a") if v.record}
    assert main(["memory", "rewind", "--db", db, "--thread", "a", "--to-step", "5"]) == 0
    assert main([*RUN, "--db", db]) == 0
    after = memory.log(db, "a", all_branches=True)
    current = [v for v in after if v.branch is None]
    assert [v.made for v in current if v.step == 5] == ["rewrite", "rewind"]
    new = {v.step: v.record for v in current if v.record}
    assert all(new[k] is before[k] for k in range(1, 6)) or all(
        new[k] == before[k] for k in range(1, 6)
    )
    old = [v for v in after if v.branch is not None]
    assert [v.step for v in old] == [6, 7, 8, 9, 10]
    capsys.readouterr()
    assert main(["trace", "--db", db, "--thread", "a"]) == 0
    assert "rewound after step 5" in capsys.readouterr().out
    page = tmp_path / "p.html"
    assert main(["trace", "--db", db, "--thread", "a", "--html", str(page)]) == 0
    assert 'class="event rewind"' in page.read_text(encoding="utf-8")


def test_edit_over_budget_changes_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = memory.show(db, "a").replace(
        "## RULES OF THUMB", "## RULES OF THUMB\n" + "- x y z\n" * 5000
    )
    file = tmp_path / "big.md"
    file.write_text(huge, encoding="utf-8")
    kept = rows(db)
    capsys.readouterr()
    assert main(["memory", "edit", "--db", db, "--thread", "a", "--from-file", str(file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert "over the budget of thread 'a'" in err
    assert err.count("\n") == 1
    assert rows(db) == kept
    with pytest.raises(DataError):
        memory.edit(db, "a", huge)
    assert rows(db) == kept


def test_valid_edit_is_a_human_edit(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = memory.show(db, "a").replace(
        "## RULES OF THUMB", "## RULES OF THUMB\n- checked by hand"
    )
    file = tmp_path / "m.md"
    file.write_text(edited, encoding="utf-8")
    assert main(["memory", "edit", "--db", db, "--thread", "a", "--from-file", str(file)]) == 0
    assert memory.log(db, "a")[-1].made == "edit"
    assert memory.show(db, "a") == edited
    capsys.readouterr()
    assert main(["memory", "log", "--db", db, "--thread", "a"]) == 0
    assert "human edit" in capsys.readouterr().out.splitlines()[-1]
    assert main(["trace", "--db", db, "--thread", "a"]) == 0
    assert "human edit after step 10" in capsys.readouterr().out
    page = tmp_path / "p.html"
    assert main(["trace", "--db", db, "--thread", "a", "--html", str(page)]) == 0
    assert "checked by hand" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["rewind", "--thread", "nope", "--to-step", "1"], ConfigError),
        (["rewind", "--thread", "a", "--to-step", "10"], ConfigError),
        (["show", "--thread", "a", "--step", "11"], ConfigError),
    ],
)
def test_errors_are_one_line(
    db: str, argv: list[str], error: type, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = rows(db)
    capsys.readouterr()
    assert main(["memory", argv[0], "--db", db, *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert err.count("\n") == 1
    assert rows(db) == kept
    verb = getattr(memory, argv[0])
    with pytest.raises(error):
        verb(db, argv[2], int(argv[4]))
    assert len(memory.log(db, "a")) == 11  # the API still works


def test_bad_file_is_refused(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"format": "llm-as-rnn.memory", "version": 99}), encoding="utf-8")
    assert main(["memory", "edit", "--db", db, "--thread", "a", "--from-file", str(file)]) == 2
    assert "version 99" in capsys.readouterr().err
