"""Validation before work: every bound `run` checks at its start, `eval` checks too.

Permanent errors are one line and exit 2 before any step; failures in cleanup
paths (releasing a lease on a full disk) never add a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import ConfigError, build_graph, open_storage, run_sequence
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.runtime.leases import Leases, holding
from llm_as_rnn.runtime.storage import leases_of
from tests.conftest import make_context

CLI = [sys.executable, "-m", "llm_as_rnn"]
EVAL = ["eval", "--model", "fake", "--methods", "zero-shot,rnn", "--sequences", "1",
        "--steps", "2"]  # fmt: skip
RUN = ["run", "--model", "fake", "--steps", "2"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def one_line(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ")
    assert says in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--budget", "10"], "--budget: budget 10 is too small"),
        (["--budgets", "10,256"], "--budgets: budget 10 is too small"),
        (["--budget", str(10**22)], "argument --budget: must be <= 1048576"),
        (["--budget", str(2**21)], "argument --budget: must be <= 1048576"),
        (["--budgets", f"256,{10**22}"], "invalid budget"),
        (["--seed", str(10**22)], "--seed: must be <= 9223372036854775807"),
        (["--seed", "-1"], "--seed: must be >= 0"),
        (["--steps", str(10**22)], "--steps: must be <= 2147483647"),
        (["--workers", "100000"], "--workers 100000 is more than 256"),
        (["--timeout", "1e308"], "--timeout: must be <= 604800.0"),
        (["--timeout", "1e-300"], "--timeout: must be >= 0.01"),
        (["--timeout", "nan"], "--timeout: must be a number of seconds"),
    ],
)
def test_eval_refuses_bad_bounds_before_any_step(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    out = tmp_path / "out"
    one_line(cli(*EVAL, *flags, "--out", str(out)), says)
    assert not (out / "state.db").exists()  # nothing computed, nothing half-written


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--budget", "10"], "budget 10 is too small"),
        (["--budget", str(10**22)], "argument --budget: must be <= 1048576"),
        (["--budget", str(2**21)], "argument --budget: must be <= 1048576"),
        (["--seed", str(10**22)], "--seed: must be <="),
        (["--start", str(10**22)], "--start: must be <="),
    ],
)
def test_run_refuses_the_same_bounds(tmp_path: Path, flags: list[str], says: str) -> None:
    db = tmp_path / "run.db"
    one_line(cli(*RUN, *flags, "--db", str(db)), says)
    assert not db.exists()


@pytest.mark.parametrize("blank", ["{}", "[]", '""', '"  "', '{"a": ""}', "[null]", "null"])
def test_empty_inputs_are_refused_by_run_and_eval(tmp_path: Path, blank: str) -> None:
    data = tmp_path / "f.jsonl"
    data.write_text(
        '{"sequence_id": "s", "step": 1, "input": "x", "target": "a"}\n'
        f'{{"sequence_id": "s", "step": 2, "input": {blank}, "target": "b"}}\n'
    )
    common = ["--data", str(data), "--task-type", "classification", "--model", "fake"]
    one_line(cli("run", *common, "--db", str(tmp_path / "r.db")), "row 2: empty input")
    one_line(cli("eval", *common, "--out", str(tmp_path / "o")), "row 2: empty input")


@pytest.mark.parametrize("blank", [{}, [], "", " \n", {"a": None}, [""]])
async def test_library_refuses_empty_inputs_before_any_step(blank: object) -> None:
    graph = build_graph(InMemorySaver(), InMemoryStore())
    days = [{"input": "a fine day", "target": "sun"}, {"input": blank, "target": "rain"}]
    with pytest.raises(ConfigError, match=r"observations\.1\.input: the input is empty"):
        await run_sequence(graph, days, thread_id="t", context=make_context())
    state = await graph.aget_state({"configurable": {"thread_id": "t"}})
    assert state.values == {}  # not one step run, nothing pending
    done = await run_sequence(graph, days[:1], thread_id="t", context=make_context())
    assert done.steps_done == 1  # the thread still works
    with pytest.raises(ConfigError, match="invalid budget"):
        await run_sequence(graph, days[:1], thread_id="u", context=make_context(), budget=10**22)


async def test_a_lease_that_cannot_be_released_does_not_hide_the_error(tmp_path: Path) -> None:
    async with open_storage(str(tmp_path / "l.db")) as (_, store):
        leases = leases_of(store)
        assert leases is not None

        async def full_disk(thread: str, mine: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        leases.release = full_disk  # type: ignore[method-assign,assignment]
        with pytest.raises(ValueError, match="the step's own error"):
            async with holding(leases, "t"):
                raise ValueError("the step's own error")


def test_a_full_disk_during_run_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def full_disk(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Leases, "release", full_disk)
    monkeypatch.setattr("llm_as_rnn.frontends.cli.run.run_sequence", full_disk)
    code = main([*RUN, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith("error: OperationalError: database or disk is full")
    assert "re-run the same command to resume" in err


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('truth-free = "false"', "truth-free takes true or false, got 'false'"),
        ("steps = true", "steps takes a value, not true/false, got true"),
        ("[eval]\nseed = false", "seed takes a value, not true/false"),
        ("eval = 5", "eval must be a table ([eval])"),
    ],
)
def test_config_file_types_are_checked(tmp_path: Path, toml: str, says: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    one_line(cli(*EVAL, "--config", str(config), "--out", str(tmp_path / "o")), says)


def test_library_integers_refuse_booleans_and_text() -> None:
    from llm_as_rnn import Context

    for fields in ({"budget": True}, {"seed": True}, {"budget": "512"},
                   {"sampling": {"predictor": {"max_new_tokens": True}}}):  # fmt: skip
        with pytest.raises(ValueError, match="valid integer"):
            Context(**fields)


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ({"sequence_id": None}, "sequence_id null is not a name"),
        ({"sequence_id": ["s"]}, 'sequence_id ["s"] is not a name'),
        ({"step": "1_0"}, 'step "1_0" is not an integer'),
        ({"step": "١٢"}, 'step "\\u0661\\u0662" is not an integer'),
        ({"step": True}, "step true is not an integer"),
        ({"input": "\u200b"}, "empty input"),
        ({"input": "\u0000"}, "empty input"),
        ({"target": True}, "target true is not a label"),
        ({"target": {"a": 1}}, 'target {"a": 1} is not a label'),
        ({"target": []}, "empty target"),
        ({"target": "\ufeff"}, "empty target"),
    ],
)
def test_odd_data_values_are_refused_not_turned_into_labels(
    tmp_path: Path, row: dict[str, object], says: str
) -> None:
    data = tmp_path / "f.jsonl"
    fields = {"sequence_id": "s", "step": 1, "input": "x", "target": "a", **row}
    data.write_text(json.dumps(fields) + "\n")
    common = ["--data", str(data), "--task-type", "classification", "--model", "fake"]
    one_line(cli("run", *common, "--db", str(tmp_path / "r.db")), f"row 1: {says}")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--methods", "rnn,rnn"], "--methods names rnn twice"),
        (["--labels", "x,y"], "--labels goes with --data FILE"),
        (["--task-type", "regression"], "--task-type goes with --data FILE"),
    ],
)
def test_eval_options_that_would_be_ignored_are_refused(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    one_line(cli("eval", "--model", "fake", *flags, "--out", str(tmp_path / "o")), says)
