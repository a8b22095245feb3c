"""A thread's identity: resuming with other settings or other data is refused."""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import ConfigError, Context, build_graph, run_sequence
from llm_as_rnn.core.differences import differences
from llm_as_rnn.core.identity import (
    NOT_RESULTS,
    prompts_digest,
    settings_of,
    task_definition,
)
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.data import weather
from llm_as_rnn.evals.config import NOT_RESULTS as EVAL_NOT_RESULTS
from llm_as_rnn.evals.config import SELECTION, EvalConfig
from llm_as_rnn.tasks.weather import WeatherTask
from tests.conftest import make_context, task_class


def make_ctx(**fields: Any) -> Context:
    return Context(**{"model": "fake", **fields})


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
    edited[1]["target"] = "dry" if DAYS[1]["target"] != "dry" else "heavy rain"
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
    for flags, says, deliberately in (
        (["--model", "fake:1"], 'models.{predictor,critic,rewriter}.name: "0" -> "1"', True),
        (["--task", "sp500", "--model", "fake"], 'task.name: "weather" -> "sp500"', True),
        # Other data is never continued, deliberately or not: one thread, one sequence.
        (["--model", "fake", "--start", "3"], "another file, or an edited one (step 1", False),
    ):
        out = run_cli("run", *flags, "--steps", "3", "--db", db, "--thread", "t")
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1
        assert says in out.stderr
        assert ("--allow-new-settings" in out.stderr) is deliberately
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


# --- The identity is derived: every setting is in it unless allow-listed. ---

ANOTHER_VALUE: dict[str, Any] = {
    "task": "sp500",
    "model": "fake:9",
    "critic_model": "fake:8",
    "rewriter_model": "fake:7",
    "base_url": "http://127.0.0.1:9/v1",  # reaches the identity through an openai: model
    "tokenizer": "/some/tokenizer",  # likewise
    "sampling": {"critic": {"temperature": 0.1}},
    "feedback": "judge",
    "budget": 777,
    "compress_attempts": 5,
    "reask_attempts": 3,
    "max_attempts": 9,
    "request_timeout": 5.0,
    "max_retry_seconds": 9.0,
    "seed": 12345,
    "step_mode": "fused",
    "rewrite_mode": "delta",
    "prompt_order": "memory-first",
    "answer_mode": "choice",
    "max_shrink": 0.5,
    "initial_memory": "## PATTERNS\n- learned elsewhere\n## RECENT ERRORS\n## RULES OF THUMB",
    "freeze": True,
    "structured": False,
}
"""A valid value other than the default for every ``Context`` field: a new field
fails ``test_every_context_field_is_hashed_or_allow_listed`` until it has one."""


def test_every_context_field_is_hashed_or_allow_listed() -> None:
    assert set(ANOTHER_VALUE) == set(Context.model_fields), "give the new field a value here"
    base = {"model": "openai:m", "base_url": "http://127.0.0.1:8/v1"}
    reference = settings_of(make_ctx(**base))
    for name, value in ANOTHER_VALUE.items():
        changed = settings_of(make_ctx(**{**base, name: value})) != reference
        assert changed == (name not in NOT_RESULTS), name
    assert set(Context.model_fields) >= NOT_RESULTS


def test_a_warm_start_is_in_the_identity_by_hash_alone() -> None:
    memory = "## PATTERNS\n- wet winters\n## RECENT ERRORS\n## RULES OF THUMB"
    one = settings_of(make_ctx(initial_memory=memory))
    other = settings_of(make_ctx(initial_memory=memory + "\n- one more"))
    assert one != other
    assert "wet winters" not in json.dumps(one)  # the identity holds its hash, not the text


def test_credentials_never_reach_the_identity() -> None:
    ctx = make_ctx(model="openai:m", base_url="http://user:s3cr3t-value@127.0.0.1:8/v1")
    text = json.dumps(settings_of(ctx))
    assert "s3cr3t-value" not in text
    assert "user" not in text
    assert "http://127.0.0.1:8/v1" in text


def test_tasks_differing_in_labels_or_prompt_wording_are_other_identities() -> None:
    from llm_as_rnn.tasks.generic import GenericClassification

    two = GenericClassification(("a", "b"), "f")
    three = GenericClassification(("a", "b", "c"), "f")
    assert task_definition(two) != task_definition(three)
    reworded = task_class("Reworded", WeatherTask, description="Another description.")()
    assert settings_of(make_ctx(task=reworded)) != settings_of(make_ctx(task=WeatherTask()))


def test_a_changed_prompt_template_is_another_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_as_rnn.core import prompts

    task = WeatherTask()
    before = prompts_digest(task)
    original = prompts.critique_messages

    @functools.wraps(original)
    def reworded(*args: Any, **kwargs: Any) -> list[Any]:
        messages = original(*args, **kwargs)
        messages[-1].content += " Be brief."
        return messages

    monkeypatch.setattr(prompts, "critique_messages", reworded)
    assert prompts_digest(task) != before
    monkeypatch.undo()
    assert prompts_digest(task) == before
    monkeypatch.setattr(prompts, "DATA_RULE", prompts.DATA_RULE + " (reworded)")
    assert prompts_digest(task) != before


WARM = "## PATTERNS\n- learned elsewhere\n## RECENT ERRORS\n## RULES OF THUMB"


def test_every_eval_option_is_in_the_unit_key_unless_allow_listed() -> None:
    other: dict[str, Any] = {
        "out": "elsewhere",
        "model": "fake:3",
        "tasks": ["sp500"],
        "methods": ["rnn"],
        "sequences": 9,
        "train_sequences": 2,
        "steps": 9,
        "initial_memory": MemoryFile(WARM),
        "seed": 5,
        "budget": 333,
        "budgets": [64],
        "preset": "paper",
        "truth_free": True,
        "concurrency": 9,
        "context_window": 999,
        "max_new_tokens": 17,
        "base_url": "http://127.0.0.1:7/v1",
        "data": "other.csv",
        "task_type": "regression",
        "labels": ["x", "y"],
        "mimic_dir": "elsewhere",
        "step_mode": "lazy",
        "answer_mode": "choice",
        "rewrite_mode": "delta",
        "prompt_order": "memory-first",
        "structured": False,
        "request_timeout": 5.0,
        "max_attempts": 9,
        "db": "other.db",
        "shard": (0, 2),
        "workers": 3,
    }
    assert set(other) == {f.name for f in dataclasses.fields(EvalConfig)}, "add the new option"
    task, data = WeatherTask(), weather.window(0, 2)
    reference = EvalConfig(out="o")
    key = reference.unit_key(task, "rnn", data)
    for name, value in other.items():
        cfg = dataclasses.replace(reference, **{name: value})
        assert (name in cfg.identity()) == (name not in EVAL_NOT_RESULTS), name
        changed = cfg.unit_key(task, "rnn", data) != key
        assert changed == (name not in EVAL_NOT_RESULTS | SELECTION), name
    assert reference.unit_key(task, "rnn", weather.window(1, 2)) != key  # the data
    assert reference.unit_key(task, "rnn-judge", data) != key  # the method's context


LABELLED = "sequence_id,step,input,target\n" + "".join(
    f"s1,{t},reading {t},{'up' if t % 2 else 'down'}\n" for t in (1, 2, 3)
)


def test_evals_differing_only_in_labels_never_share_a_step(tmp_path: Path) -> None:
    data = tmp_path / "f.csv"
    data.write_text(LABELLED)
    db = str(tmp_path / "shared.db")

    def accuracy(out: str, labels: str) -> float:
        done = run_cli("eval", "--data", str(data), "--task-type", "classification",
                       "--labels", labels, "--methods", "zero-shot", "--sequences", "1",
                       "--steps", "3", "--model", "fake", "--db", db, "--out",
                       str(tmp_path / out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        return float(summary["results"]["f"]["zero-shot"]["metrics"]["accuracy"]["mean"])

    wide = accuracy("wide", "up,down,sideways,flat")
    fresh = run_cli("eval", "--data", str(data), "--task-type", "classification",
                    "--labels", "up,down", "--methods", "zero-shot", "--sequences", "1",
                    "--steps", "3", "--model", "fake",
                    "--out", str(tmp_path / "fresh"))  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    alone = json.loads((tmp_path / "fresh" / "summary.json").read_text())
    expected = float(alone["results"]["f"]["zero-shot"]["metrics"]["accuracy"]["mean"])
    assert accuracy("narrow", "up,down") == expected  # not the wide eval's steps
    assert wide == accuracy("wide-again", "up,down,sideways,flat")


def test_run_resumed_with_other_labels_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "f.csv"
    data.write_text(LABELLED)
    db = str(tmp_path / "run.db")
    args = ["run", "--data", str(data), "--task-type", "classification", "--model", "fake",
            "--db", db, "--thread", "t"]  # fmt: skip
    first = run_cli(*args, "--labels", "up,down", "--steps", "2")
    assert first.returncode == 0, first.stderr
    other = run_cli(*args, "--labels", "up,down,flat", "--steps", "3")
    assert other.returncode == 2, other.stderr
    assert "task.attributes" in other.stderr
    assert "resuming" not in other.stderr


def test_a_changed_baseline_prompt_is_another_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_as_rnn.evals import baselines

    task, data, cfg = WeatherTask(), weather.window(0, 2), EvalConfig(out="o")
    keys = {m: cfg.unit_key(task, m, data) for m in ("zero-shot", "fhc", "memprompt", "rnn")}
    monkeypatch.setattr(baselines, "DATA_RULE", baselines.DATA_RULE + " (reworded)")
    for method in ("zero-shot", "fhc", "memprompt"):
        assert cfg.unit_key(task, method, data) != keys[method], method
    assert cfg.unit_key(task, "rnn", data) == keys["rnn"]  # the graph's prompts are its own
    monkeypatch.undo()
    original = baselines.history_entry

    def reworded(task: Any, record: Any) -> str:
        return original(task, record) + " (reworded)"

    monkeypatch.setattr(baselines, "history_entry", reworded)
    assert cfg.unit_key(task, "fhc", data) != keys["fhc"]


def test_the_digest_is_rendered_again_only_when_the_module_or_task_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llm_as_rnn.core import prompts

    rendered: list[int] = []
    original = prompts.critique_messages

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> list[Any]:
        rendered.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(prompts, "critique_messages", counted)
    first = prompts_digest(WeatherTask())
    assert prompts_digest(WeatherTask()) == first  # another instance, the same definition
    assert len(rendered) == 1
    monkeypatch.setattr(prompts, "UNUSED_RULE", "no builder reads it", raising=False)
    assert prompts_digest(WeatherTask()) == first  # rendered again: the module changed
    assert len(rendered) == 2
    reworded = task_class("Reworded2", WeatherTask, description="Another description.")()
    assert prompts_digest(reworded) != first
    assert len(rendered) == 3
