"""A newcomer's first hour, played end to end with a task plugin installed (fake models).

The session of issue 22: a helpdesk triage task of one's own, installed as an
entry-point plugin; an ``OnlineLearner`` given a mistyped truth and then the
right one; a restart in another process that finds the pending prediction and
discards it; the HTML trace; and ``eval --answer-mode choice`` on a file of
tickets. Every process sees the plugin the way a user's shell does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import plugin_env

pytestmark = pytest.mark.registry  # runs again with the plugin visible to the whole suite

FIRST_PROCESS = """
import json, sys
from llm_as_rnn import Context, DataError, OnlineLearner

learner = OnlineLearner.open(sys.argv[1], Context(task="helpdesk", model="fake", budget=300))
out = {"first": learner.predict("alice", "My invoice shows a double charge")["answer"]}
try:
    learner.learn("alice", "chargeback")  # not one of the helpdesk labels
except DataError as exc:
    out["refused"] = str(exc)
record = learner.learn("alice", "Billing")  # labels match case-insensitively
out["learned"] = [record["step"], record["target"], record["correct"]]
out["pending"] = learner.predict("alice", "I cannot log in since Monday")["answer"]
out["memory"] = learner.memory("alice")
learner.close()  # the process ends with a prediction still waiting for its truth
print(json.dumps(out))
"""

SECOND_PROCESS = """
import json, sys
from llm_as_rnn import Context, OnlineLearner, StateError

learner = OnlineLearner.open(sys.argv[1], Context(task="helpdesk", model="fake", budget=300))
out = {"memory": learner.memory("alice")}
try:
    learner.predict("alice", "another ticket")
except StateError as exc:
    out["busy"] = str(exc)
out["discarded"] = learner.discard("alice")["input"]
learner.predict("alice", "The export button crashes the app")
record = learner.learn("alice", "bug")
out["learned"] = [record["step"], record["target"]]
out["history"] = [r["step"] for r in learner.history("alice")]
out["all_discarded"] = [d["input"] for d in learner.discarded("alice")]
learner.close()
print(json.dumps(out))
"""

TICKETS = [
    ("My invoice is wrong", "billing"),
    ("App crashes on start", "bug"),
    ("Cannot reset my password", "account"),
    ("Do you have a student discount?", "other"),
]


def python(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=plugin_env("helpdesk"),
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_as_rnn", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=plugin_env("helpdesk"),
    )


def test_a_newcomer_session_with_a_plugin_task(tmp_path: Path) -> None:
    db = str(tmp_path / "helpdesk.db")
    labels = {"billing", "bug", "account", "other"}

    first = python(FIRST_PROCESS, db)
    assert first["first"] in labels
    assert first["pending"] in labels
    refused = str(first["refused"])
    assert "'chargeback' is not one of billing, bug, account, other" in refused
    assert "\n" not in refused
    assert first["learned"][0] == 1
    assert first["learned"][1] == "billing"
    assert "ROUTING RULES" in str(first["memory"])  # the plugin's own sections

    second = python(SECOND_PROCESS, db)
    assert second["memory"] == first["memory"]  # the restart sees what the first process learned
    assert "pending step 2" in str(second["busy"])
    assert second["discarded"] == "I cannot log in since Monday"
    assert second["learned"] == [2, "bug"]
    assert second["history"] == [1, 2]
    assert second["all_discarded"] == ["I cannot log in since Monday"]

    page = tmp_path / "alice.html"
    shown = cli("trace", "--db", db, "--thread", "alice", "--html", str(page))
    assert shown.returncode == 0, shown.stderr
    html = page.read_text(encoding="utf-8")
    assert "helpdesk" in html
    assert "predictor" in html
    assert "fake" in html
    assert "Discarded steps" in html
    assert "I cannot log in since Monday" in html
    printed = cli("trace", "--db", db, "--thread", "alice")
    assert printed.returncode == 0, printed.stderr
    assert "discarded step 2: I cannot log in since Monday -- predicted" in printed.stdout

    data = tmp_path / "tickets.csv"
    rows = [
        f"s{s},{t},{text},{label}" for s in (1, 2) for t, (text, label) in enumerate(TICKETS, 1)
    ]
    data.write_text("sequence_id,step,input,target\n" + "\n".join(rows) + "\n")
    out = tmp_path / "eval"
    evaluated = cli(
        "eval",
        "--tasks",
        "helpdesk",
        "--data",
        str(data),
        "--model",
        "fake",
        "--answer-mode",
        "choice",
        "--methods",
        "zero-shot,rnn",
        "--out",
        str(out),
    )
    assert evaluated.returncode == 0, evaluated.stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "### helpdesk" in report
    assert "Intervals over 2 sequences are wide" in report
    assert "helpdesk: accuracy" in evaluated.stderr  # the summary table at the end
    steps = [json.loads(line) for line in (out / "steps.jsonl").open()]
    answered = [s for s in steps if s["method"] in ("zero-shot", "rnn")]
    assert len(answered) == 16  # 2 methods x 2 sequences x 4 steps
    assert all(s["valid"] and s["prediction"] in labels for s in answered)  # choice: a label
    assert all(set(s["distribution"]) == labels for s in answered)
