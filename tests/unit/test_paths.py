"""Paths checked once: no output is, or is inside, an input or another output; atomic writes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn import open_storage
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.evals.config import EvalConfig
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.paths import (
    DATABASE,
    INPUT_FILE,
    INPUT_FOLDER,
    MODEL,
    READ_DATABASE,
    Paths,
    Role,
    output_file,
    output_folder,
    replacing,
)

EVAL_OUT = output_folder(["report.md", "steps.jsonl"], databases=["state.db"], marker="report.md")
"""An output folder like eval's: two files and its state database."""
OUTPUT_FILE = output_file(b"<!doctype html")
"""An output file like trace's page."""


def declare(*flags: tuple[str, str, Role]) -> Paths:
    found = Paths()
    for flag, value, role in flags:
        found.add(flag, value, role)
    return found


def refusal(*flags: tuple[str, str, Role]) -> str:
    with pytest.raises(ConfigError) as info:
        declare(*flags).check()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a database ``x.db`` and a data file ``d.csv``; the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.db").write_bytes(b"SQLite format 3\x00" + bytes(84))
    (tmp_path / "d.csv").write_text("sequence_id,step,input,target\n")
    return tmp_path


@pytest.mark.parametrize(
    ("db", "html"),
    [
        ("x.db", "x.db"),
        ("x.db", "./x.db"),
        ("x.db", "{here}/x.db"),
        ("{here}/x.db", "sub/../x.db"),
        ("sqlite:///x.db", "x.db"),
        ("sqlite:///{here}/x.db", "./x.db"),
        ("x.db", "link-to-db"),
        ("link-to-db", "x.db"),
        ("x.db", "hard-link-to-db"),
        ("x.db", "x.db-wal"),
        ("x.db", "x.db-journal"),
    ],
)
def test_an_output_onto_the_database_under_any_name_is_refused(
    here: Path, db: str, html: str
) -> None:
    (here / "sub").mkdir()
    (here / "link-to-db").symlink_to(here / "x.db")
    os.link(here / "x.db", here / "hard-link-to-db")
    db, html = db.format(here=here), html.format(here=here)
    message = refusal(("--db", db, READ_DATABASE), ("--html", html, OUTPUT_FILE))
    assert message.startswith(f"--html {html} is the same file as ")
    assert "give --html another path" in message


def test_an_output_inside_an_input_folder_is_refused(here: Path) -> None:
    (here / "mimic").mkdir()
    message = refusal(("--mimic-dir", "mimic", INPUT_FOLDER), ("--out", "mimic/run", EVAL_OUT))
    assert message == (
        "--out mimic/run is inside --mimic-dir mimic: writing there would change an input; "
        "give --out a path outside it"
    )
    refusal(("--mimic-dir", "mimic", INPUT_FOLDER), ("--out", "mimic", EVAL_OUT))


def test_a_local_model_folder_is_an_input(here: Path) -> None:
    (here / "models" / "m").mkdir(parents=True)
    (here / "models" / "m" / "config.json").write_text("{}")
    assert "--out models/m is the same folder as --model models/m" in refusal(
        ("--model", "hf:models/m", MODEL), ("--out", "models/m", EVAL_OUT)
    )
    assert "inside --model models/m" in refusal(
        ("--model", "hf:models/m#w.gguf", MODEL), ("--out", "models/m/run", EVAL_OUT)
    )
    for spec in ("hf:org/not-here", "openai:m", "fake", "embedded"):
        assert declare(("--model", spec, MODEL)).places == []


def test_an_input_inside_an_output_folder_is_refused_only_when_written(here: Path) -> None:
    (here / "out").mkdir()
    (here / "out" / "data.csv").write_text("x")
    (here / "out" / "report.md").write_text("x")
    # The folder's own database and a file it does not write are fine inside it.
    declare(("--data", "out/data.csv", INPUT_FILE), ("--out", "out", EVAL_OUT),
            ("--db", "out/state.db", DATABASE)).check()  # fmt: skip
    for flag, role in (("--data", INPUT_FILE), ("--config", INPUT_FILE), ("--db", DATABASE)):
        message = refusal((flag, "out/report.md", role), ("--out", "out", EVAL_OUT))
        assert "out/report.md (in --out out)" in message
        assert f"{flag} out/report.md" in message


def test_the_data_file_as_the_output_folder_or_database_is_refused(here: Path) -> None:
    assert "--out d.csv is the same file as --data d.csv" in refusal(
        ("--data", "d.csv", INPUT_FILE), ("--out", "d.csv", EVAL_OUT)
    )
    assert "--db d.csv is the same file as --data d.csv" in refusal(
        ("--data", "d.csv", INPUT_FILE), ("--db", "d.csv", DATABASE)
    )


def test_overlapping_outputs_are_refused(here: Path) -> None:
    message = refusal(("--html", "page", OUTPUT_FILE), ("--json-out", "./page", OUTPUT_FILE))
    assert message == "--html page and --json-out ./page are one file: give them different paths"
    message = refusal(("--html", "page", OUTPUT_FILE), ("--plots", "page/a.png", OUTPUT_FILE))
    assert message.startswith("--plots page/a.png is inside --html page, a file")
    message = refusal(("--out", "o", EVAL_OUT), ("--html", "o/steps.jsonl", OUTPUT_FILE))
    assert "o/steps.jsonl (in --out o)" in message
    assert "--html o/steps.jsonl" in message


@pytest.mark.parametrize(
    ("make", "html", "message"),
    [
        (None, "missing/page.html", "--html missing/page.html: folder missing does not exist"),
        (lambda h: (h / "f").write_text("x"), "f/page.html", "f is a file, not a folder"),
        (lambda h: (h / "f").write_text("x"), "f/deeper/page.html", "f is a file, not a folder"),
        (lambda h: (h / "dir").mkdir(), "dir", "--html dir is a folder: give a file path"),
        (lambda h: os.mkfifo(h / "pipe"), "pipe", "--html pipe is not a regular file"),
    ],
)
def test_an_output_file_needs_a_folder_and_no_folder_in_its_place(
    here: Path, make: Any, html: str, message: str
) -> None:
    if make:
        make(here)
    assert message in refusal(("--html", html, OUTPUT_FILE))


def test_an_output_folder_is_created_but_not_over_a_file(here: Path) -> None:
    declare(("--out", "new/deeper", EVAL_OUT)).check()
    assert not (here / "new").exists()  # checking creates nothing
    assert refusal(("--out", "d.csv", EVAL_OUT)) == "--out d.csv is a file: give a folder"
    assert "d.csv is a file, not a folder" in refusal(("--out", "d.csv/o", EVAL_OUT))
    (here / "o" / "report.md").mkdir(parents=True)
    assert refusal(("--out", "o", EVAL_OUT)) == (
        "o/report.md (in --out o) is a folder: give a file path"
    )


def test_servers_and_memory_databases_have_no_path(here: Path) -> None:
    for db in ("postgresql://u@h/db", ":memory:", "sqlite:///:memory:"):
        assert declare(("--db", db, DATABASE)).places == []
    with pytest.raises(ConfigError, match="unsupported database URL"):
        declare(("--db", "ftp://x/y", DATABASE))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    target.write_text("previous")
    target.chmod(0o640)

    def render_and_fail() -> None:
        with replacing(target) as handle:
            handle.write(b"half a pa")
            raise RuntimeError("the renderer failed")

    with pytest.raises(RuntimeError):
        render_and_fail()
    assert target.read_text() == "previous"
    assert os.listdir(tmp_path) == ["page.html"]
    link = tmp_path / "link.html"
    link.symlink_to(target)
    with replacing(link) as handle:
        handle.write(b"new")
    assert link.is_symlink()
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.html", "page.html"]


def test_a_plot_that_fails_midway_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    from llm_as_rnn.evals.plots import plot_curves

    def savefig_then_fail(self: Figure, target: Any, **kwargs: Any) -> None:
        if isinstance(target, str | os.PathLike):
            Path(target).write_bytes(b"\x89PNG half")
        else:
            target.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    plot = tmp_path / "metric_vs_step.png"
    plot.write_bytes(b"\x89PNG previous")
    monkeypatch.setattr(Figure, "savefig", savefig_then_fail)
    records = [{"task": "t", "method": "rnn", "sequence": "s", "step": 1,
                "metrics": {"accuracy": 1.0}, "prompt_tokens": 9, "memory_tokens": 5}]  # fmt: skip
    results = {"t": {"rnn": {"metrics": {"accuracy": {"mean": 1.0}}}}}
    with pytest.raises(OSError, match="No space"):
        plot_curves(tmp_path, records, results)
    assert plot.read_bytes() == b"\x89PNG previous"
    assert os.listdir(tmp_path) == ["metric_vs_step.png"]


def test_steps_that_fail_to_serialise_keep_the_previous_file(tmp_path: Path) -> None:
    from llm_as_rnn.evals.report import write_outputs

    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("cannot print")

    steps = tmp_path / "steps.jsonl"
    steps.write_text('{"previous": true}\n')
    records = [{"step": 1}, {"step": 2, "value": Unprintable()}]
    with pytest.raises(ValueError, match="cannot print"):
        write_outputs(tmp_path, "", EvalConfig(out=str(tmp_path)), {}, records, {}, "m")
    assert steps.read_text() == '{"previous": true}\n'
    assert os.listdir(tmp_path) == ["steps.jsonl"]


async def test_a_reader_refuses_a_foreign_database_and_leaves_it_unchanged(
    tmp_path: Path,
) -> None:
    for mode in ("delete", "wal"):
        db = tmp_path / f"foreign-{mode}.db"
        with sqlite3.connect(db) as conn:
            conn.execute(f"PRAGMA journal_mode={mode}")
            conn.execute("CREATE TABLE accounts (id INTEGER)")
        conn.close()
        before, files = sha(db), sorted(os.listdir(tmp_path))
        with pytest.raises(ConfigError, match="SQLite database of another program"):
            async with open_storage(str(db), read_only=True):
                pass
        assert sha(db) == before
        assert sorted(os.listdir(tmp_path)) == files  # no -wal, -shm or .lock beside it
    with pytest.raises(ConfigError, match="not found"):
        async with open_storage(str(tmp_path / "missing.db"), read_only=True):
            pass
    assert not (tmp_path / "missing.db").exists()


async def test_a_reader_reads_our_database_without_writing(tmp_path: Path) -> None:
    db = tmp_path / "ours.db"
    async with open_storage(str(db)) as (_, store):
        await store.aput(namespaces.trace("t"), "0001", {"step": 1})
    before, files = sha(db), sorted(os.listdir(tmp_path))
    async with open_storage(f"sqlite:///{db}", read_only=True) as (saver, store):
        assert [item.value for item in await store.asearch(namespaces.trace("t"))] == [{"step": 1}]
        assert await saver.aget_tuple({"configurable": {"thread_id": "t"}}) is None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.aput(namespaces.trace("t"), "0002", {"step": 2})
    assert sha(db) == before
    assert sorted(os.listdir(tmp_path)) == files


def test_an_output_replaces_only_what_the_command_wrote(tmp_path: Path) -> None:
    page, other = tmp_path / "page.html", tmp_path / "other.db"
    page.write_text("<!DOCTYPE html><p>an earlier page</p>")
    declare(("--html", str(page), OUTPUT_FILE)).check()  # a page written before: replaced
    for content in (b"SQLite format 3\x00 rest", b"sequence_id,step,input,target\n", b""):
        other.write_bytes(content)
        message = refusal(("--html", str(other), OUTPUT_FILE))
        assert "exists and is not what llm-as-rnn writes there" in message
        assert other.read_bytes() == content
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "steps.jsonl").write_text("a user's own file")
    assert "holds steps.jsonl but no report.md" in refusal(("--out", str(mine), EVAL_OUT))
    (mine / "report.md").write_text("# an earlier eval")
    declare(("--out", str(mine), EVAL_OUT)).check()  # an earlier output of ours
