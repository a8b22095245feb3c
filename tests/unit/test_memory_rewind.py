"""``llm-as-rnn memory``: rewinds recompute, refusals change nothing, export keeps others' files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn import Context, memory, testing
from llm_as_rnn.core.history import Version
from llm_as_rnn.errors import ConfigError, DataError, LeaseError, StateError
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.frontends.online import OnlineLearner
from tests.unit.test_memory_history import RUN, rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Return a database holding a 10-step fake thread ``a``."""
    path = str(tmp_path / "t.db")
    assert main([*RUN, "--db", path]) == 0
    return path


AGAIN = [*RUN, "--model", "fake:0:7"]
"""``RUN`` again, the fake model resolved anew (its latency is no part of the identity)."""


@pytest.fixture
def other_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``AGAIN``'s model answer as another seed's would: a recomputed step differs.

    Resolved models are cached per spec: ``fake:0:7`` is this module's alone.
    """
    made = testing.fake_model
    monkeypatch.setattr(testing, "fake_model", lambda seed, *a, **k: made(seed + 1, *a, **k))


def records(found: list[Version]) -> dict[int, Any]:
    """Return the step records of a thread's current branch, by step."""
    return {v.step: v.record for v in found if v.record and v.branch is None}


@pytest.mark.usefixtures("other_seed")
def test_rewind_recomputes_new_steps_and_keeps_the_old_ones(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = records(memory.log(db, "a"))
    assert main(["memory", "rewind", "--db", db, "--thread", "a", "--to-step", "5"]) == 0
    assert main([*AGAIN, "--db", db]) == 0
    found = memory.log(db, "a", all_branches=True)
    new = records(found)
    assert [new[k] == old[k] for k in range(1, 11)] == [True] * 5 + [False] * 5
    assert all(new[k]["usage"]["predictor"]["latency_s"] >= 0.007 for k in range(6, 11))
    kept = {v.step: v for v in found if v.branch is not None}
    assert sorted(kept) == [6, 7, 8, 9, 10]
    assert all(kept[k].memory == old[k]["memory_after"] for k in kept)
    capsys.readouterr()
    assert main(["memory", "log", "--db", db, "--thread", "a", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 10 + 1 + 5  # h_0, steps 1-10, the rewind, the old 6-10


@pytest.mark.usefixtures("other_seed")
def test_the_step_after_the_rewind_is_not_replayed(db: str) -> None:
    old = records(memory.log(db, "a"))
    memory.rewind(db, "a", 9)  # step 10's prompt is the old one: its journal must not answer
    assert main([*AGAIN, "--db", db]) == 0
    new = records(memory.log(db, "a"))[10]
    assert new != old[10]
    for role in ("predictor", "critic"):  # called again at 7 ms, not the journal's old answer
        assert new["usage"][role]["latency_s"] >= 0.007 > old[10]["usage"][role]["latency_s"]


def test_rewind_to_step_0_restarts_from_h0(db: str) -> None:
    h0 = memory.show(db, "a", 0)
    assert main(["memory", "rewind", "--db", db, "--thread", "a", "--to-step", "0"]) == 0
    assert memory.show(db, "a") == h0
    assert [v.made for v in memory.log(db, "a")] == [
        "h0",
        "rewind",
    ]
    assert main([*RUN, "--db", db]) == 0
    found = memory.log(db, "a", all_branches=True)
    assert [v.step for v in found if v.branch is None] == [0, 0, *range(1, 11)]
    assert [v.step for v in found if v.branch is not None] == list(range(1, 11))
    assert found[2].record is not None
    assert found[2].record["memory_before"] == h0


def refused(db: str, argv: list[str], capsys: pytest.CaptureFixture[str], words: str) -> None:
    """Check a memory command exits 2 with one line holding ``words``, changing no row."""
    kept = rows(db)
    capsys.readouterr()
    assert main(["memory", *argv, "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:"), err
    assert err.count("\n") == 1, err
    assert words in err, err
    assert rows(db) == kept


def test_a_pending_step_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    learner = OnlineLearner.open(db, Context(model="fake", budget=300))
    learner.predict("p", "rain")
    learner.learn("p", "light rain")
    learner.predict("p", "dry")  # step 2 waits for its truth
    learner.close()
    refused(db, ["rewind", "--thread", "p", "--to-step", "0"], capsys, "unfinished step 2")
    refused(db, ["edit", "--thread", "p", "--from-file", __file__], capsys, "unfinished step 2")
    with pytest.raises(StateError):
        memory.rewind(db, "p", 0)
    assert memory.log(db, "a")[-1].step == 10  # the API still works


HOLD = """
import asyncio, sys
from llm_as_rnn.runtime.leases import holding
from llm_as_rnn.runtime.storage import leases_of, open_storage

async def hold():
    async with open_storage(sys.argv[1]) as (_, store):
        async with holding(leases_of(store), "a"):
            print("held", flush=True)
            sys.stdin.readline()

asyncio.run(hold())
"""


def test_a_busy_thread_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"PYTHONPATH": str(REPO / "src")}
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env,
    ) as other:  # fmt: skip
        assert other.stdout is not None
        assert other.stdout.readline() == "held\n"
        refused(db, ["rewind", "--thread", "a", "--to-step", "3"], capsys, "being run by")
        with pytest.raises(LeaseError):
            memory.edit(db, "a", memory.show(db, "a") + "\n- by hand")
        assert other.stdin is not None
        other.stdin.write("\n")
        other.stdin.close()
    assert memory.rewind(db, "a", 3).step == 3  # the lease is free again


@pytest.mark.parametrize(
    ("editor", "words"),
    [
        (None, "no $EDITOR set"),
        ("false", "$EDITOR exited with 1: nothing changed"),
        ("true", "the memory is unchanged"),  # saved as it was: nothing to record, exit 2
        ("/nonexistent/editor", "cannot run $EDITOR"),
    ],
)
def test_editor_refusals(
    db: str,
    editor: str | None,
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    if editor is None:
        monkeypatch.delenv("EDITOR", raising=False)
    else:
        monkeypatch.setenv("EDITOR", editor)
    refused(db, ["edit", "--thread", "a"], capsys, words)
    assert len(memory.log(db, "a")) == 11


def test_editor_edit(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv(
        "EDITOR", f"{sys.executable} -c \"import sys; open(sys.argv[1], 'a').write('- by hand')\""
    )
    assert main(["memory", "edit", "--db", db, "--thread", "a"]) == 0
    assert memory.show(db, "a").endswith("- by hand")
    assert memory.log(db, "a")[-1].made == "edit"


def test_export_replaces_only_a_memory_file(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("input,target\nrain,wet\n", encoding="utf-8")
    refused(db, ["export", "--thread", "a", "--out", str(csv)], capsys, "is not what llm-as-rnn")
    with pytest.raises(ConfigError, match="is not what llm-as-rnn"):
        memory.export(db, "a", out=csv)
    assert csv.read_text(encoding="utf-8") == "input,target\nrain,wet\n"
    text = str(tmp_path / "prompt.md")
    refused(db, ["export", "--thread", "a", "--format", "text", "--out", text], capsys, "> FILE")
    out = tmp_path / "m.json"
    for step in ("3", "4"):  # a memory file is replaced
        assert (
            main(
                ["memory", "export", "--db", db, "--thread", "a", "--step", step, "--out", str(out)]
            )
            == 0
        )
    assert memory.export(db, "a", 4, out=out).memory == memory.show(db, "a", 4)


def test_trace_shows_the_edited_memory_last(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    edited = memory.show(db, "a") + "\n- checked by hand"
    memory.edit(db, "a", edited)
    capsys.readouterr()
    assert main(["trace", "--db", db, "--thread", "a"]) == 0
    out = capsys.readouterr().out
    closing = out[out.rindex("memory after step 10") :]
    assert "edited by hand" in closing
    assert "checked by hand" in closing
    with pytest.raises(DataError, match="unchanged"):
        memory.edit(db, "a", edited)
