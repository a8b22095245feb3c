"""SIGKILL inside `memory rewind` and `memory edit`: the old head or the new one, never a mix.

Each command is stopped between its writes (``runtime.pause``: the same code
path, cued by an environment variable) and killed there; every reader must
then agree on one head, and the next command must end where an
uninterrupted rewind or edit ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn import memory
from llm_as_rnn.core.branches import config_of, trace_of
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.runtime.pause import VARIABLE
from llm_as_rnn.runtime.storage import open_storage
from tests.reliability.harness import CLI, REPO, comparable, record, run_cli, trace

THREAD, STEPS, TO = "t", 8, 4
MORE = "\n- Checked by hand: dry spells follow high pressure."


def run(db: Path, steps: int = STEPS) -> list[str]:
    task = ["--model", "fake", "--task", "weather", "--steps", str(steps)]
    return [*CLI, "run", *task, "--db", str(db), "--thread", THREAD]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    done = run_cli([str(a) for a in args])
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def killed_at(point: str, args: list[str]) -> None:
    """Run ``args`` until it stops at ``point``, then SIGKILL it."""
    env = {**os.environ, VARIABLE: point}
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    assert proc.stderr is not None
    said = proc.stderr.readline()  # blocks until the cue, or '' if it ended without pausing
    assert said.strip() == f"paused at {point}", said + proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def heads(db: Path) -> dict[str, Any]:
    """What each reader says the thread's head is (they must agree)."""

    async def read() -> dict[str, Any]:
        async with open_storage(str(db), read_only=True) as (checkpointer, store):
            raw = await checkpointer.aget_tuple(config_of(THREAD))
            assert raw is not None
            values = raw.checkpoint["channel_values"]
            shown = await trace_of(build_graph(checkpointer, store), THREAD)
            return {"step": values["step"], "memory": values["memory"], "trace": shown}

    got = asyncio.run(read())
    last = memory.log(db, THREAD)[-1]
    assert (last.step, last.memory) == (got["step"], got["memory"])  # `memory log` agrees
    assert memory.show(db, THREAD) == got["memory"]
    assert [r["step"] for r in got["trace"]] == list(range(1, got["step"] + 1))
    return got


def branches(db: Path) -> list[tuple[int, str, str, str | None]]:
    return [(v.step, v.memory, v.made, v.branch) for v in memory.log(db, THREAD, all_branches=True)]


def copy(base: Path, to: Path) -> Path:
    to.mkdir(exist_ok=True)
    db = to / "m.db"
    for extra in ("", "-wal", "-shm"):
        if Path(f"{base}{extra}").exists():
            shutil.copy(f"{base}{extra}", f"{db}{extra}")
    return db


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("base") / "base.db"
    cli(*run(db))
    return db


def mine(base: Path, folder: Path) -> Path:
    """A valid human edit of the base thread's memory, as a file."""
    path = folder / "mine.md"
    path.write_text(memory.show(base, THREAD) + MORE)
    return path


@pytest.fixture(scope="module")
def rewound(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The head right after an uninterrupted rewind, and the database once run again."""
    db = copy(base, tmp_path_factory.mktemp("rewound"))
    memory.rewind(db, THREAD, TO)
    head = heads(db)
    cli(*run(db))
    return head, db


@pytest.fixture(scope="module")
def edited(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The head right after an uninterrupted edit, and the database once run 2 steps more."""
    folder = tmp_path_factory.mktemp("edited")
    db = copy(base, folder)
    memory.edit(db, THREAD, mine(base, folder).read_text())
    head = heads(db)
    cli(*run(db, STEPS + 2))
    return head, db


@pytest.mark.parametrize("point", ["rewind-moved", "rewind-forked"])
def test_rewind_killed_leaves_old_or_new_head(
    base: Path, rewound: tuple[dict[str, Any], Path], tmp_path: Path, point: str
) -> None:
    new, reference = rewound
    db = copy(base, tmp_path)
    rewind = [*CLI, "memory", "rewind", "--db", str(db), "--thread", THREAD, "--to-step", str(TO)]
    killed_at(point, rewind)
    now = heads(db)
    assert now == (heads(base) if point == "rewind-moved" else new)
    assert now["step"] == (STEPS if point == "rewind-moved" else TO)
    if point == "rewind-moved":  # the user retries the rewind
        cli(*rewind)
    else:  # the read-only CLI, on a cut-short rewind with a dead holder's lease
        assert (
            f"rewind from step {STEPS}"
            in cli(*CLI, "memory", "log", "--db", db, "--thread", THREAD).stdout
        )
    cli(*run(db, TO + 2))  # the next writer finishes the cut-short rewind first: no stale
    assert comparable(trace(db, THREAD)) == comparable(trace(reference, THREAD)[: TO + 2])
    cli(*run(db))  # steps TO+3..STEPS
    assert comparable(trace(db, THREAD)) == comparable(trace(reference, THREAD))
    assert [r["step"] for r in trace(db, THREAD)] == list(range(1, STEPS + 1))
    assert branches(db) == branches(reference)  # the old branch (`log --all`) the same
    record(f"SIGKILL during memory rewind ({point})", runs=2, survived=1, kills=1)


@pytest.mark.parametrize("point", ["edit-checked", "edit-written"])
def test_edit_killed_leaves_old_or_new_head(
    base: Path, edited: tuple[dict[str, Any], Path], tmp_path: Path, point: str
) -> None:
    new, reference = edited
    db = copy(base, tmp_path)
    edit = [*CLI, "memory", "edit", "--db", str(db), "--thread", THREAD, "--from-file"]
    edit.append(str(mine(base, tmp_path)))
    killed_at(point, edit)
    now = heads(db)
    assert now == (heads(base) if point == "edit-checked" else new)
    assert (memory.log(db, THREAD)[-1].made == "edit") == (point == "edit-written")
    if point == "edit-checked":  # the user retries the edit
        cli(*edit)
    else:  # the read-only CLI, with a dead holder's lease
        assert "human edit" in cli(*CLI, "memory", "log", "--db", db, "--thread", THREAD).stdout
    cli(*run(db, STEPS + 2))  # the dead holder's lease is taken over at once
    assert comparable(trace(db, THREAD)) == comparable(trace(reference, THREAD))
    assert [(v.step, v.memory, v.made) for v in memory.log(db, THREAD)] == [
        (v.step, v.memory, v.made) for v in memory.log(reference, THREAD)
    ]
    record(f"SIGKILL during memory edit ({point})", runs=2, survived=1, kills=1)
