"""One small evaluation on the real embedded model: both tasks, all five methods."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_small_eval_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_as_rnn",
            *shlex.split(
                "eval --tasks weather,sp500 --methods zero-shot,fhc,memprompt,rnn,rnn-judge "
                "--model embedded --sequences 1 --steps 2 --max-new-tokens 24 --budget 256 "
                "--seed 1 --out"
            ),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())["results"]
    assert set(summary) == {"weather", "sp500"}
    for task in summary.values():
        assert set(task) == {"zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"}
        for method, stats in task.items():
            assert stats["steps"] == 2
            calls = stats["cost_per_step"]["calls"]
            assert calls >= (3 if method.startswith("rnn") else 1)
            if method.startswith("rnn"):
                assert stats["memory_tokens"] <= 256
    lines = (out / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 5 * 2
    assert "Model: `embedded` (SmolLM2-135M-Instruct" in (out / "report.md").read_text()
    assert len(list(out.glob("*.png"))) >= 2
