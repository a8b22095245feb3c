"""``llm-as-rnn run``: a thread's identity checked before any model loads, and where its trace is.

In-process (``main``), so a test times the command, not the interpreter's start.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.frontends.cli.parser import parse_args
from llm_as_rnn.frontends.cli.run import trace_hint
from llm_as_rnn.runtime.resolve import Resolver


def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "f.csv"
    path.write_text("sequence_id,step,input,target\ns,1,a,x\ns,2,b,y\ns,3,c,x\n")
    return path


def run(tmp_path: Path, *flags: str) -> list[str]:
    data, db = user_file(tmp_path), tmp_path / "f.db"
    return ["run", "--data", str(data), "--task-type", "classification", "--db", str(db), *flags]


def threads(db: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert main(["trace", "--db", str(db)]) == 0
    return [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading any model (every role, every path) fail the test."""

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Resolver, "__call__", refuse)


def test_another_model_on_the_same_file_is_another_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run(tmp_path, "--model", "fake")) == 0
    started = time.monotonic()
    assert main(run(tmp_path, "--model", "fake:1")) == 0
    assert time.monotonic() - started < 2
    err = capsys.readouterr().err
    assert "thread 'f-s-start0-supervised' was run with other settings" in err
    assert 'models.{predictor,critic,rewriter}.name: "0" -> "1"' in err  # once, not per role
    first, second = threads(tmp_path / "f.db", capsys)
    assert first == "f-s-start0-supervised"
    assert second.startswith("f-s-start0-supervised-")
    # each setting finds its own thread again: nothing left to do, no model loaded
    for model, thread in (("fake", first), ("fake:1", second)):
        assert main(run(tmp_path, "--model", model)) == 0
        assert f"thread {thread!r} already has 3 steps" in capsys.readouterr().err


def test_the_bundled_tasks_default_thread_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "w.db")
    for mode in ("free", "choice"):
        flags = ["--model", "fake", "--steps", "1", "--answer-mode", mode, "--db", db]
        assert main(["run", *flags]) == 0
    assert len(threads(tmp_path / "w.db", capsys)) == 2


def test_an_explicit_thread_with_other_settings_is_refused_before_any_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    assert main(run(tmp_path, "--model", "fake", "--thread", "mine")) == 0
    capsys.readouterr()
    request.getfixturevalue("no_model_loads")  # from here on, a model load fails the test
    started = time.monotonic()
    code = main(run(tmp_path, "--model", "fake:1", "--answer-mode", "choice", "--thread", "mine"))
    assert time.monotonic() - started < 2
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("error: thread 'mine' was run with other settings (")
    assert 'models.{predictor,critic,rewriter}.name: "0" -> "1"; answer_mode' in err
    assert "--thread NEW" in err
    assert "--allow-new-settings" in err


@pytest.mark.parametrize(
    ("db", "thread"),
    [
        ("plain.db", "weather-start0-supervised"),
        ("my runs/it's.db", "-odd [name] $HOME"),
        ("sqlite:///x/y.db", "t"),
        ("~/r.db", "t"),
        ("postgresql://app:hunter22@db:5432/runs", "t"),
    ],
)
def test_trace_hint_is_a_command_that_opens_the_trace(db: str, thread: str) -> None:
    line = trace_hint(db, thread)
    prefix, _, command = line.partition(" -- open it with: ")
    assert prefix.startswith("trace: ")
    words = shlex.split(command)
    assert words[:2] == ["llm-as-rnn", "trace"]
    parsed = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words[2:]}
    assert parsed["--thread"] == thread
    assert parsed["--html"] == "trace.html"
    if db.startswith("postgresql://"):
        assert parsed["--db"] == "postgresql://db:5432/runs"  # no credentials shown
    else:
        assert Path(parsed["--db"]) == Path(db.removeprefix("sqlite:///")).expanduser()


def test_an_in_memory_trace_says_it_is_gone() -> None:
    line = trace_hint(":memory:", "t")
    assert line.startswith("trace: ")
    assert "in memory only" in line
    assert "--db FILE" in line


def test_run_ends_with_where_its_trace_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = "sub dir/demo.db"
    assert main(["run", "--model", "fake", "--steps", "1", "--db", db]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    command = shlex.split(last.partition(" -- open it with: ")[2])
    assert main(command[1:]) == 0  # the command as printed writes the page
    assert "<!doctype html" in (tmp_path / "trace.html").read_text().lower()
    assert main(["run", "--model", "fake", "--steps", "1", "--db", db, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # --json: stdout is the steps' JSON alone
    assert captured.err.strip().splitlines()[-1] == last


def test_choice_answers_on_a_regression_task_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_loads: None
) -> None:
    db = tmp_path / "r.db"
    code = main(
        ["run", "--task", "sp500", "--model", "fake", "--answer-mode", "choice", "--db", str(db)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "answer_mode 'choice'" in err
    assert "'sp500' (regression)" in err
    assert "(--answer-mode free)" in err
    assert not db.exists()


def test_a_regression_step_shows_its_truth_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "r.db")
    assert main(["run", "--task", "sp500", "--model", "fake", "--steps", "2", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "no truth" not in out
    assert out.count("   error ") == 2
    assert "MAE " in out


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--retries", "100"], "argument --retries: must be <= 20, got 100"),
        (["--max-new-tokens", "100000"], "argument --max-new-tokens: must be <= 32768"),
        (["--budget", str(2**21)], "argument --budget: must be <= 1048576"),
    ],
)
def test_a_value_out_of_its_settings_range_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--model", "fake", *flags, "--db", str(tmp_path / "x.db")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}")
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", ["run", "eval", "trace"])
def test_an_unknown_flag_points_to_its_commands_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args([command, "--bogus", "1", *(["--out", "o"] if command == "eval" else [])])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: --bogus (see `llm-as-rnn {command} --help`)\n"
    )


TOP = 'model = "fake"\nthread = "mine"\nsteps = 2\n'
"""Options of a config shared by every command: ``thread`` is not eval's, ``model`` not trace's."""


def test_one_config_serves_every_command(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(TOP + "[eval]\nsequences = 1\n")
    run_args = parse_args(["run", "--config", str(config)])
    assert (run_args.model, run_args.thread, run_args.steps) == ("fake", "mine", 2)
    eval_args = parse_args(["eval", "--config", str(config), "--out", str(tmp_path / "o")])
    assert (eval_args.model, eval_args.steps, eval_args.sequences) == ("fake", 2, 1)
    assert parse_args(["trace", "--config", str(config)]).thread == "mine"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("bogus = 1\n", "unknown option 'bogus' for trace"),
        ("[bogus]\nsteps = 1\n", "unknown table [bogus]: use run, eval, trace"),
        ("[trace]\nsteps = 1\n", "unknown option 'steps' for trace"),
    ],
)
def test_a_key_no_command_takes_is_refused(tmp_path: Path, extra: str, says: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(TOP + extra)
    with pytest.raises(ConfigError, match=re.escape(says)):
        parse_args(["trace", "--config", str(config)])


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """Return the one line a refused command printed, checking it exited 2."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    return err


def unreadable_configs(tmp_path: Path) -> list[tuple[str, str]]:
    """Return ``(path, what the error says)`` for config files that cannot be read."""
    binary = tmp_path / "latin1.toml"
    binary.write_bytes("steps = 2 # d\xe9j\xe0\n".encode("latin-1"))
    out = [(str(tmp_path), "is a directory"), (str(tmp_path / "none.toml"), "not found")]
    out += [(str(binary), "is not UTF-8")]
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.toml"
        locked.write_text("steps = 2\n")
        locked.chmod(0)
        out.append((str(locked), "cannot read config file"))
    return out


@pytest.mark.parametrize("command", ["run", "trace", "eval"])
def test_a_config_file_that_cannot_be_read_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    flags = {"run": ["--model", "fake"], "trace": [], "eval": ["--out", str(tmp_path / "o")]}
    for path, said in unreadable_configs(tmp_path):
        code = main([command, *flags[command], "--config", path, "--db", str(tmp_path / "c.db")])
        assert said in one_line_error(capsys, code)
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize("spec", ["fake:1:99999999999999999999", "fake-long:0:60001"])
def test_a_fake_model_s_latency_is_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    started = time.monotonic()
    code = main(["run", "--model", spec, "--steps", "1", "--db", str(tmp_path / "l.db")])
    assert time.monotonic() - started < 5
    assert "latency is at most 60000 ms" in one_line_error(capsys, code)


@pytest.mark.parametrize("thread", ["", "   ", "\t", "a\nb", "red\x1b[31m", "nul\x00", "x" * 1001])
@pytest.mark.parametrize("command", ["run", "trace"])
def test_an_empty_blank_or_control_character_thread_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], thread: str, command: str
) -> None:
    flags = ["--model", "fake", "--steps", "1"] if command == "run" else []
    with pytest.raises(SystemExit) as refused:  # argparse's own exit, as for every bad flag
        main([command, *flags, "--thread", thread, "--db", str(tmp_path / "t.db")])
    assert isinstance(refused.value.code, int)
    assert "argument --thread: thread" in one_line_error(capsys, refused.value.code)
    assert not (tmp_path / "t.db").exists()


def test_labels_with_a_named_task_are_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(user_file(tmp_path))
    runs = [
        ["run", "--model", "fake", "--task", "weather", "--data", data, "--labels", "x,y"],
        ["eval", "--model", "fake", "--tasks", "weather", "--data", data, "--labels", "x,y",
         "--out", str(tmp_path / "o")],
    ]  # fmt: skip
    for argv in runs:
        assert "--labels goes with --task-type" in one_line_error(capsys, main(argv))
    assert not (tmp_path / "o").exists()


def test_a_too_small_budget_on_a_default_thread_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run(tmp_path, "--model", "fake")) == 0
    capsys.readouterr()
    said = one_line_error(capsys, main(run(tmp_path, "--model", "fake", "--budget", "8")))
    assert "budget" in said
    assert "these go on" not in said
    assert len(threads(tmp_path / "f.db", capsys)) == 1


def two_files_of_one_name(tmp_path: Path) -> tuple[str, str]:
    """Return two data files, both named tickets.csv, in two folders, with other steps."""
    paths = []
    for folder, words in (("x", ("a", "b")), ("y", ("c", "d"))):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "tickets.csv"
        path.write_text(f"sequence_id,step,input,target\ns,1,{words[0]},x\ns,2,{words[1]},y\n")
        paths.append(str(path))
    return paths[0], paths[1]


def on_file(path: str, db: Path, *flags: str) -> list[str]:
    return ["run", "--model", "fake", "--data", path, "--task-type", "classification",
            "--db", str(db), *flags]  # fmt: skip


def test_two_files_of_one_name_are_two_default_threads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = two_files_of_one_name(tmp_path)
    db = tmp_path / "t.db"
    assert main(on_file(x, db)) == 0
    assert main(on_file(y, db)) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "data: another file, or an edited one" in err
    first, second = threads(db, capsys)
    assert first == "tickets-s-start0-supervised"
    assert second.startswith(f"{first}-")
    for path, thread in ((x, first), (y, second)):  # each file finds its own thread again
        assert main(on_file(path, db)) == 0
        assert f"thread {thread!r} already has 2 steps" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [[], ["--allow-new-settings"]])
def test_another_file_on_an_explicit_thread_is_refused_as_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    x, y = two_files_of_one_name(tmp_path)
    db = tmp_path / "t.db"
    assert main(on_file(x, db, "--thread", "mine")) == 0
    capsys.readouterr()
    said = one_line_error(capsys, main(on_file(y, db, "--thread", "mine", *flags)))
    assert "another file, or an edited one" in said
    assert "--allow-new-settings" not in said  # two datasets in one thread mean nothing


def test_the_thread_list_tells_threads_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run(tmp_path, "--model", "fake")) == 0
    assert main(run(tmp_path, "--model", "fake:1", "--steps", "2")) == 0
    assert main(run(tmp_path, "--model", "fake", "--answer-mode", "choice", "--budget", "600")) == 0
    capsys.readouterr()
    assert main(["trace", "--db", str(tmp_path / "f.db")]) == 0
    base, *others = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"f-s-start0-supervised +3 steps +fake:0, free, budget 4096", base)
    assert len(others) == 2
    lines = "\n".join(others)
    assert "2 steps  fake:1, free, budget 4096  (vs f-s-start0-supervised: models." in lines
    assert "3 steps  fake:0, choice, budget 600  (vs f-s-start0-supervised: budget" in lines


def test_trace_shows_discarded_steps_in_step_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm_as_rnn import Context, OnlineLearner

    db = str(tmp_path / "o.db")
    learner = OnlineLearner.open(db, Context(model="fake"))
    learner.predict("a", "first day")
    learner.learn("a", "dry")
    learner.predict("a", "a day dropped")
    learner.discard("a")
    for day in ("second day", "third day"):
        learner.predict("a", day)
        learner.learn("a", "dry")
    learner.close()
    capsys.readouterr()
    assert main(["trace", "--db", db, "--thread", "a"]) == 0
    out = capsys.readouterr().out
    shown = [out.index(text) for text in ("first day", "a day dropped", "second day", "third day")]
    assert shown == sorted(shown)
    assert "discarded step 2" in out
