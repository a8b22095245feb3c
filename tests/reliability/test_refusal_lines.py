"""A server's refusal costs one warning line per cause in a whole command, worded for it.

Against the fault server refusing structured outputs (and logprobs): an eval in
worker processes says it once (the workers report, the parent prints); choice mode
with ``--structured off`` says only that it cannot score labels.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.reliability.harness import CLI, fault_server, run_args, run_cli


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_an_eval_in_workers_says_a_refusal_once(tmp_path: Path) -> None:
    with fault_server(seed=3, no_structured=True) as server:
        args = [*CLI, "eval", "--model", "openai:fault-model", "--base-url", server.url]
        args += ["--tasks", "weather", "--methods", "rnn,rnn-judge", "--sequences", "2"]
        args += ["--steps", "2", "--budget", "160", "--timeout", "5", "--rewrite-mode", "delta"]
        args += ["--workers", "2", "--out", str(tmp_path / "o")]
        out = run_cli(args, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert warnings_of(out.stderr) == [
        "warning: fault-model refuses structured outputs (response_format): memory updates "
        "and judge answers are free text, read by the parsers"
    ]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["structured_updates"] == "refused -> free text"
    report = (tmp_path / "o" / "report.md").read_text()
    assert "memory updates structured: refused -> free text" in report


def test_choice_answers_with_structured_off_warn_only_that_labels_are_free(
    tmp_path: Path,
) -> None:
    with fault_server(seed=3, no_structured=True, no_logprobs=True) as server:
        extra = ("--answer-mode", "choice", "--structured", "off")
        out = run_cli(run_args(server.url, tmp_path / "c.db", "c", 2, *extra))
    assert out.returncode == 0, out.stderr[-2000:]
    assert warnings_of(out.stderr) == [
        "warning: fault-model cannot score labels (no log-probabilities, no constrained "
        "decoding): answering in free mode"
    ]
