"""A thread's identity: resuming with other settings or other data is refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import ConfigError, build_graph, run_sequence
from llm_as_rnn.core.identity import differences
from llm_as_rnn.data import weather
from tests.conftest import make_context

CLI = [sys.executable, "-m", "llm_as_rnn"]
DAYS = weather.window(0, 4)


def test_differences_name_each_setting() -> None:
    old = {"budget": 96, "models": {"predictor": "fake", "critic": "fake"}, "seed": None}
    new = {"budget": 200, "models": {"predictor": "fake:1", "critic": "fake"}, "seed": None}
    assert differences(old, new) == ["budget: 96 -> 200", 'models.predictor: "fake" -> "fake:1"']
    assert differences(old, {**old, "budget": None}) == []  # None: keep the thread's own


async def test_library_resume_with_other_settings_is_refused() -> None:
    graph = build_graph(InMemorySaver(), InMemoryStore())
    await run_sequence(graph, DAYS, thread_id="t", context=make_context(budget=300), steps=2)
    with pytest.raises(ConfigError, match=r"budget: 300 -> 400"):
        await run_sequence(graph, DAYS, thread_id="t", context=make_context(budget=400))
    with pytest.raises(ConfigError, match=r'step_mode: "three-call" -> "lazy"'):
        await run_sequence(graph, DAYS, thread_id="t", context=make_context(step_mode="lazy"))
    done = await run_sequence(graph, DAYS, thread_id="t", context=make_context())
    assert done.steps_done == 4  # same settings (budget kept): resumes
    more = await run_sequence(
        graph,
        weather.window(0, 5),
        thread_id="t",
        context=make_context(budget=400),
        allow_new_settings=True,
    )
    assert more.steps_done == 5
    with pytest.raises(ConfigError, match="budget: 400 -> 300"):  # the new ones now stand
        await run_sequence(graph, DAYS, thread_id="t", context=make_context(budget=300))


async def test_resume_with_edited_data_is_refused() -> None:
    graph = build_graph(InMemorySaver(), InMemoryStore())
    await run_sequence(graph, DAYS, thread_id="t", context=make_context(), steps=2)
    edited = [dict(d) for d in DAYS]
    edited[1]["target"] = "snow" if DAYS[1]["target"] != "snow" else "sun"
    with pytest.raises(ConfigError, match="data: step 2 had another input or target"):
        await run_sequence(graph, edited, thread_id="t", context=make_context())  # type: ignore[arg-type]
    shifted = weather.window(1, 4)
    with pytest.raises(ConfigError, match="data: step 1"):
        await run_sequence(graph, shifted, thread_id="t", context=make_context())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, check=False)


def test_cli_resume_with_another_task_or_model_is_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "run.db")
    first = run_cli("run", "--model", "fake", "--steps", "2", "--budget", "96", "--db", db,
                    "--thread", "t")  # fmt: skip
    assert first.returncode == 0, first.stderr
    for flags, says in (
        (["--model", "fake:1"], 'models.predictor: "fake" -> "fake:1"'),
        (["--task", "sp500", "--model", "fake"], 'task: "weather" -> "sp500"'),
        (["--model", "fake", "--start", "3"], "data: step 1 had another input"),
    ):
        out = run_cli("run", *flags, "--steps", "3", "--db", db, "--thread", "t")
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1
        assert says in out.stderr
        assert "--allow-new-settings" in out.stderr
    steps = sqlite3.connect(db).execute("select count(*) from store").fetchone()[0]
    deliberate = run_cli("run", "--model", "fake:1", "--steps", "3", "--db", db, "--thread", "t",
                         "--allow-new-settings", "--json")  # fmt: skip
    assert deliberate.returncode == 0, deliberate.stderr
    assert [json.loads(x)["step"] for x in deliberate.stdout.splitlines()] == [3]
    assert sqlite3.connect(db).execute("select count(*) from store").fetchone()[0] > steps


def eval_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("eval", "--tasks", "weather", "--methods", "zero-shot,rnn", "--sequences", "1",
                   "--steps", "3", *args)  # fmt: skip


def test_evals_with_other_settings_in_one_db_never_share_steps(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")

    def steps(out: str) -> list[dict[str, object]]:
        lines = (tmp_path / out / "steps.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def rows() -> int:
        with sqlite3.connect(db) as conn:
            store = conn.execute("select count(*) from store").fetchone()[0]
            return int(store + conn.execute("select count(*) from checkpoints").fetchone()[0])

    a = eval_cli("--model", "fake:1", "--db", db, "--out", str(tmp_path / "a"))
    assert a.returncode == 0, a.stderr
    written = rows()
    b = eval_cli("--model", "fake:2", "--db", db, "--out", str(tmp_path / "b"))
    assert b.returncode == 0, b.stderr
    assert rows() > written  # computed anew, not reused
    predicted = [s["prediction_text"] for s in steps("a")]
    assert predicted != [s["prediction_text"] for s in steps("b")]
    written = rows()
    c = eval_cli("--model", "fake:1", "--db", db, "--out", str(tmp_path / "c"))
    assert c.returncode == 0, c.stderr
    assert rows() == written  # identical settings: every step found, no model call
    assert [s["prediction_text"] for s in steps("c")] == predicted
