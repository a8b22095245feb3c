"""The public extension API: tasks checked when built, found by name through entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from llm_as_rnn import ConfigError, Context, RegressionTask, get_task
from tests.conftest import plugin_env, task_class
from tests.fixtures.helpdesk_plugin.helpdesk_plugin import HelpdeskTask as Helpdesk

ROOT = Path(__file__).resolve().parents[2]


def test_a_complete_task_builds_and_parses() -> None:
    task = Helpdesk()
    assert task.parse("Answer: bug") == "bug"
    assert task.score("billing", "Invoice").correct is True  # a synonym, any case


def test_missing_description_fails_at_construction() -> None:
    NoDescription = task_class("NoDescription", name="x", labels=("a", "b"))

    with pytest.raises(ConfigError, match="task class NoDescription: set description"):
        NoDescription()


def test_missing_labels_fail_at_construction() -> None:
    NoLabels = task_class("NoLabels", name="x", description="d")

    with pytest.raises(ConfigError, match="set labels"):
        NoLabels()


@pytest.mark.parametrize("labels", [(), ("Yes", "No"), ("a", "a"), ("a", " ")])
def test_bad_label_sets_are_refused(labels: tuple[str, ...]) -> None:
    Bad = task_class("Bad", name="bad", description="d", labels=labels)
    with pytest.raises(ConfigError, match="labels"):
        Bad()


def test_multi_word_labels_are_a_valid_definition() -> None:
    Weather = task_class("Weather", name="w", description="d", labels=("heavy rain", "sun"))

    assert Weather().labels == ("heavy rain", "sun")


def test_missing_name_and_bad_sections_fail() -> None:
    class NoName(RegressionTask):
        description = "d"

    with pytest.raises(ConfigError, match="set name"):
        NoName()

    class Repeated(RegressionTask):
        name = "r"
        description = "d"
        sections: ClassVar[tuple[str, ...]] = ("A", "A")

    with pytest.raises(ConfigError, match="repeat"):
        Repeated()


@pytest.mark.registry
def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown task 'helpdesk': choose one of mimic"):
        get_task("helpdesk")
    with pytest.raises(ValueError, match="unknown task"):
        Context(task="helpdesk")


def test_the_custom_task_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_task.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    steps = [line for line in out.stdout.splitlines() if line.startswith("step ")]
    assert len(steps) == 6
    assert all(("escalate" in s or "resolve" in s) for s in steps)
    assert "memory after 6 tickets" in out.stdout
    assert "## RECENT ERRORS" in out.stdout


def with_plugin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python with the fixture's plugins installed and used."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=plugin_env("helpdesk", "broken", "missing"),
        cwd=cwd,
        check=False,
    )


def test_an_installed_plugin_task_is_found_by_name() -> None:
    code = (
        "from llm_as_rnn import get_task, Context\n"
        "from llm_as_rnn.tasks import task_names\n"
        "task = get_task('helpdesk')\n"
        "Context(task='helpdesk')\n"
        "print(type(task).__module__, task.labels, task_names())\n"
        # As Studio and langgraph.json deployments send it: a plain dict context.
        "import asyncio\n"
        "from langgraph.checkpoint.memory import InMemorySaver\n"
        "from llm_as_rnn import build_graph\n"
        "run = build_graph(InMemorySaver()).ainvoke(\n"
        "    {'observations': [{'input': 'Site down', 'target': 'bug'}]},\n"
        "    {'configurable': {'thread_id': 't'}},\n"
        "    context={'task': 'helpdesk', 'model': 'fake'},\n"
        ")\n"
        "out = asyncio.run(run)\n"
        "memory = out['memory']\n"
        "print('step', out['step'], out['last_step']['target'], '## ROUTING RULES' in memory)\n"
    )
    out = with_plugin("-c", code)
    assert out.returncode == 0, out.stderr
    assert "helpdesk_plugin ('billing', 'bug', 'account', 'other')" in out.stdout
    assert "'helpdesk'" in out.stdout
    assert "'weather'" in out.stdout
    assert "step 1 bug True" in out.stdout


def test_run_reaches_a_plugin_task_with_the_users_file(tmp_path: Path) -> None:
    data = tmp_path / "tickets.v2.csv"
    data.write_text(
        "sequence_id,step,input,target\n"
        "desk.eu,1,Password reset link expired,account\n"
        "desk.eu,2,Checkout returns HTTP 500 for all,Bug\n"
        "desk.eu,3,How do I export invoices?,invoice\n"
        "other,1,Printer jam,other\n"
    )
    db = tmp_path / "runs.db"
    run = ["-m", "llm_as_rnn", "run", "--task", "helpdesk", "--data", str(data)]
    out = with_plugin(*run, "--model", "fake", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    steps = [json.loads(line) for line in out.stdout.splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert [s["target"] for s in steps] == ["account", "bug", "billing"]
    assert all(s["prediction"] in Helpdesk.labels for s in steps)
    trace = with_plugin("-m", "llm_as_rnn", "trace", "--db", str(db))
    assert trace.stdout.split()[:3] == ["tickets.v2-desk.eu-start0-supervised", "3", "steps"]


def test_a_bad_target_for_a_plugin_task_names_the_row(tmp_path: Path) -> None:
    data = tmp_path / "tickets.csv"
    data.write_text("sequence_id,step,input,target\ns,1,x,bug\ns,2,y,ignore\n")
    db = tmp_path / "runs.db"
    run = ["-m", "llm_as_rnn", "run", "--task", "helpdesk", "--data", str(data)]
    out = with_plugin(*run, "--model", "fake", "--db", str(db))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "row 3" in out.stderr
    assert "'ignore' is not one of billing, bug, account, other" in out.stderr
    assert not db.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [("broken", "the plugin's own bug"), ("missing", "cannot be loaded")],
)
def test_a_broken_plugin_is_a_one_line_error(name: str, message: str) -> None:
    out = with_plugin("-m", "llm_as_rnn", "run", "--task", name, "--model", "fake")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ")
    assert out.stderr.strip().count("\n") == 0
    assert message in out.stderr
