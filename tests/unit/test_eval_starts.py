"""The eval report says which memory each row started from, derived from its config."""

from __future__ import annotations

import re
from pathlib import Path

from llm_as_rnn.core.memfile import parse
from tests.unit.test_eval_cli import run_eval
from tests.unit.test_eval_transfer import ARGS, FILE


def section(report: str, title: str) -> str:
    return report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_report_names_every_rows_start_and_never_says_cold_of_a_warm_one(
    tmp_path: Path,
) -> None:
    cold = tmp_path / "first"
    done = run_eval(*ARGS, "--model", "fake", "--out", str(cold))
    assert done.returncode == 0, done.stderr
    assert f"steps.jsonl, {FILE}" in done.stderr  # the terminal names the trained memory too
    assert done.stderr.index("training") < done.stderr.index("zero-shot")  # its bar first
    report = (cold / "report.md").read_text()
    starts = section(report, "Starting memory")
    assert "| rnn | the task's h_0 (a cold start) |" in starts
    assert "| rnn-warm | the memory `rnn` learned on the training sequences |" in starts
    assert "error correction is not learning" in starts  # rnn-frozen's
    training = section(report, "Training (rnn-warm, rnn-frozen)")
    assert "starting from the task's h_0 (a cold start)" in training
    # each training sequence's steps in the one thread, and the test sequences named
    assert re.search(r"steps 1-3\), \S+ \([^)]*; steps 4-6\)", training), training
    assert "Test sequences" in training

    given = parse((cold / FILE).read_text())
    warm = tmp_path / "second"
    done = run_eval(*ARGS, "--model", "fake", "--out", str(warm), "--init-memory", str(cold / FILE))
    assert done.returncode == 0, done.stderr
    report = (warm / "report.md").read_text()
    named = f"the --init-memory file `{FILE}` (sha256 {given.sha256[:12]}, origin thread "
    starts = section(report, "Starting memory")
    assert f"| rnn | {named}" in starts
    training = section(report, "Training (rnn-warm, rnn-frozen)")
    assert f"starting from {named}" in training
    assert "warm from the file" in training
    assert not re.search(r"\b(cold|blank)\b", report, re.IGNORECASE), "cold said of a warm row"

    # without training too, the warm start is in the report, not only in the command
    plain = tmp_path / "plain"
    args = ["--tasks", "weather", "--methods", "rnn", "--sequences", "1", "--steps", "1"]
    done = run_eval(
        *args, "--model", "fake", "--out", str(plain), "--init-memory", str(cold / FILE)
    )
    assert done.returncode == 0, done.stderr
    assert f"| rnn | {named}" in section((plain / "report.md").read_text(), "Starting memory")
