"""One small evaluation on the real embedded model: both tasks, all five methods."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from llm_as_rnn.evals.config import REFERENCES

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
        models = {"zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"}
        assert set(task) - set(REFERENCES) == models
        for method, stats in task.items():
            if method in REFERENCES:
                assert stats["cost_per_step"]["calls"] == 0
                continue
            assert stats["steps"] == 2
            calls = stats["cost_per_step"]["calls"]
            assert calls >= (3 if method.startswith("rnn") else 1)
            if method.startswith("rnn"):
                assert stats["memory_tokens"] <= 256
    lines = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    assert len([r for r in lines if r["method"] not in REFERENCES]) == 2 * 5 * 2
    assert "Model: `embedded` (SmolLM2-135M-Instruct" in (out / "report.md").read_text()
    assert len(list(out.glob("*.png"))) >= 2
