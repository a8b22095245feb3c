"""Every view of a rejected rewrite says its kind beside its reason, in the summary's words.

The step panel, ``memory log``, the terminal and HTML traces, the eval report and the
Python API (``SequenceResult.rejections``) all count and name rejections as the run
summary does (``core.rejections``); a memory's note ids show as written.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from llm_as_rnn import build_graph, open_storage, read_trace, run_sequence
from llm_as_rnn.core.branches import versions
from llm_as_rnn.data import weather
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.frontends.cli.memory import version_line
from llm_as_rnn.frontends.terminal import step_panel
from llm_as_rnn.runtime.backends import approx_tokens
from tests.conftest import make_context, make_model, rewriter_answers

REASON = "unknown note: unusable operations: REMOVE n99: no such note"


def shown(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


async def rejected_thread(db: Path) -> None:
    """A delta thread of 3 steps whose every update names a note the memory lacks."""
    ctx = make_context(make_model(rewriter_answers("REMOVE n99")), rewrite_mode="delta")
    async with open_storage(str(db)) as (saver, store):
        graph = build_graph(saver, store)
        result = await run_sequence(graph, weather.window(0, 3), thread_id="t", context=ctx)
        records = await read_trace(store, "t")
        found = await versions(graph, "t", approx_tokens)  # a chat model's thread: no tokenizer
        logged = [version_line(v) for v in found]  # memory log's lines
    assert result.rejections == {
        "rewrites": 3,
        "rejected": 3,
        "by_kind": {"unknown note": 3},
        "without_rewrite": {},
    }
    assert REASON in shown(step_panel(records[0], 3))
    assert f"rejected ({REASON})" in logged[1]


def test_every_view_names_the_kind_beside_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    asyncio.run(rejected_thread(db))
    capsys.readouterr()
    assert main(["trace", "--db", str(db), "--thread", "t"]) == 0
    assert "rewrites rejected: 3 of 3 (unknown note 3)" in capsys.readouterr().out
    page = tmp_path / "t.html"
    assert main(["trace", "--db", str(db), "--thread", "t", "--html", str(page)]) == 0
    assert REASON in page.read_text()


def test_run_and_eval_say_skipped_steps_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 8 steps: the fake predictor is right at least once (a lazy step skips its rewrite)
    lazy = ["--model", "fake", "--steps", "8", "--budget", "200", "--step-mode", "lazy"]
    assert main(["run", *lazy, "--db", ":memory:"]) == 0
    assert re.search(r"rewrites rejected: \d+ of \d+ · skipped \d+", capsys.readouterr().out)
    out = tmp_path / "o"
    args = ["eval", *lazy, "--tasks", "weather", "--methods", "rnn", "--sequences", "1"]
    assert main([*args, "--out", str(out)]) == 0
    counts = json.loads((out / "summary.json").read_text())["results"]["weather"]["rnn"]
    rewrites, skipped = counts["rewrites"], counts["rewrites"]["without_rewrite"]["skipped"]
    words = f"{rewrites['rejected']} of {rewrites['rewrites']} · skipped {skipped}"
    assert words in (out / "report.md").read_text()


def test_a_memory_s_note_ids_are_shown_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    run = ["run", "--model", "fake", "--steps", "2", "--budget", "200", "--db", ":memory:"]
    assert main([*run, "--rewrite-mode", "delta"]) == 0
    out = capsys.readouterr().out
    assert "- [n1] " in out
    assert "-  " not in out


def test_json_lines_leave_no_blank_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    run = ["run", "--model", "fake", "--steps", "2", "--budget", "200", "--db", ":memory:"]
    assert main([*run, "--json"]) == 0
    err = capsys.readouterr().err
    assert "" not in err.splitlines(), err
