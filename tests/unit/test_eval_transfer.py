"""``eval --train-sequences K``: a memory learned on K sequences, measured warm and frozen."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from llm_as_rnn.core.memfile import parse
from llm_as_rnn.tasks import get_task
from tests.conftest import kill_when
from tests.unit.test_eval_cli import CLI, run_eval
from tests.unit.test_eval_workers import outputs

METHODS = "zero-shot,rnn,rnn-warm,rnn-frozen"
ARGS = ["--tasks", "weather", "--methods", METHODS, "--train-sequences", "2", "--sequences", "3"]
ARGS += ["--steps", "3"]
FILE = "trained-memory-weather.json"


def steps(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]


def test_transfer_eval_rows_calls_and_starting_memories(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_eval(*ARGS, "--model", "fake", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = (out / "report.md").read_text()
    for method in ("persistence", "prior", "zero-shot", "rnn", "rnn-warm", "rnn-frozen"):
        assert f"\n| {method} | " in report, method
    assert f"[{FILE}]({FILE})" in report
    trained = parse((out / FILE).read_text())
    assert not trained.edited
    assert trained.task == "weather"
    assert trained.origin["step"] == 6  # 2 training sequences x 3 steps, one thread
    records = steps(out)
    by = {m: [r for r in records if r["method"] == m] for m in METHODS.split(",")}
    assert all(len(rows) == 9 for rows in by.values())
    # frozen: exactly one model call per step, the predictor's, and the memory never moves
    assert all(r["calls"] == 1 for r in by["rnn-frozen"])
    assert all(r["usage"]["predictor"]["calls"] == 1 for r in by["rnn-frozen"])
    assert all(r["enforcement"] == "frozen" for r in by["rnn-frozen"])
    assert all(r["memory_before"] == r["memory"] == trained.memory for r in by["rnn-frozen"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["weather"]["rnn-frozen"]["cost_per_step"]["calls"] == 1.0
    # warm starts every test sequence from the trained memory, cold from the task's h_0
    firsts = {m: [r for r in rows if r["step"] == 1] for m, rows in by.items()}
    assert all(r["memory_before"] == trained.memory for r in firsts["rnn-warm"])
    assert all(r["memory_before"] == get_task("weather").initial_memory() for r in firsts["rnn"])
    assert trained.memory != get_task("weather").initial_memory()
    # what was trained on: never a test sequence, and earlier in time
    training = summary["training"]["weather"]["rnn"]
    assert len(training["sequences"]) == 2
    tested = {r["sequence"] for r in records}
    assert not tested & set(training["sequences"])
    trained_days = [day for ids in training["ids"] for day in ids]
    assert max(trained_days) < min(r["id"] for r in records if r["method"] == "rnn")
    assert training["steps"] == 6
    assert training["file"] == FILE


def test_transfer_methods_and_training_go_together(tmp_path: Path) -> None:
    for flags, message in (
        (["--methods", "rnn,rnn-frozen"], "error: rnn-frozen starts from a memory learned first"),
        (["--methods", "rnn", "--train-sequences", "2"], "error: --train-sequences learns"),
    ):
        done = run_eval(*flags, "--model", "fake", "--out", str(tmp_path / "x"))
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith(message), done.stderr
        assert not (tmp_path / "x").exists()


def test_two_workers_train_once_and_equal_one_process(tmp_path: Path) -> None:
    one = run_eval(*ARGS, "--model", "fake:0", "--out", str(tmp_path / "one"))
    two = run_eval(*ARGS, "--model", "fake:0", "--workers", "2", "--out", str(tmp_path / "two"))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert (tmp_path / "one" / FILE).read_bytes() == (tmp_path / "two" / FILE).read_bytes()


def training_steps(db: Path) -> int:
    """Count the training thread's committed steps."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            query = "SELECT count(*) FROM store WHERE prefix LIKE 'llm_as_rnn.trace.%:training:%'"
            return int(conn.execute(query).fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_a_training_killed_midway_resumes_to_a_straight_run(tmp_path: Path) -> None:
    straight = run_eval(*ARGS, "--model", "fake:0:40", "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "killed"
    slow = [*CLI, *ARGS, "--model", "fake:0:40", "--out", str(out)]
    kill_when(slow, lambda: training_steps(out / "state.db") >= 2)
    assert 2 <= training_steps(out / "state.db") < 6  # killed inside the training
    assert not (out / FILE).exists()
    final = run_eval(*ARGS, "--model", "fake:0:40", "--out", str(out))
    assert final.returncode == 0, final.stderr
    assert training_steps(out / "state.db") == 6
    assert outputs(out) == outputs(tmp_path / "straight")
    assert (out / FILE).read_bytes() == (tmp_path / "straight" / FILE).read_bytes()


def test_eval_init_memory_starts_every_memory_method_from_the_file(tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert run_eval(*ARGS, "--model", "fake", "--out", str(first)).returncode == 0
    trained = parse((first / FILE).read_text())
    out = tmp_path / "second"
    args = ["--tasks", "weather", "--methods", "zero-shot,rnn", "--sequences", "2", "--steps", "2"]
    done = run_eval(*args, "--model", "fake", "--out", str(out), "--init-memory", str(first / FILE))
    assert done.returncode == 0, done.stderr
    records = steps(out)
    firsts = [r for r in records if r["method"] == "rnn" and r["step"] == 1]
    assert len(firsts) == 2
    assert all(r["memory_before"] == trained.memory for r in firsts)
    config = json.loads((out / "config.json").read_text())
    assert trained.memory not in json.dumps(config)  # known by its hash
    # The file may not be an output of the run that reads it: with training, eval
    # writes trained-memory-TASK.json into --out.
    again = run_eval(
        *ARGS, "--model", "fake", "--out", str(first), "--init-memory", str(first / FILE)
    )
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1
    assert "would destroy that input" in again.stderr
    # another task's memory: one line, before any step
    other = run_eval(
        "--tasks",
        "sp500",
        "--methods",
        "rnn",
        "--sequences",
        "1",
        "--steps",
        "1",
        "--model",
        "fake",
        "--out",
        str(tmp_path / "x"),
        "--init-memory",
        str(first / FILE),
    )
    assert other.returncode == 2, other.stderr
    assert other.stderr.count("\n") == 1, other.stderr
    assert "learned on task 'weather'" in other.stderr
