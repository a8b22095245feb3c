"""``eval --workers N``: processes sharing one state database give one process's results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from llm_as_rnn.evals.config import REFERENCES
from tests.conftest import kill_when
from tests.unit.test_eval_cli import ARGS, CLI, TOTAL, run_eval, stored_steps


def untimed(value: Any) -> Any:
    """Drop measured latencies, the only figures that differ between identical runs."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k != "latency_s"}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def outputs(out: Path) -> tuple[Any, list[Any]]:
    summary = json.loads((out / "summary.json").read_text())
    summary["config"].pop("model")  # fake:0 vs fake:0:15, the latency knob only
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    return summary, untimed(steps)


def test_two_workers_equal_one_process(tmp_path: Path) -> None:
    one = run_eval(*ARGS, "--model", "fake:0", "--out", str(tmp_path / "one"))
    two = run_eval(*ARGS, "--model", "fake:0", "--workers", "2", "--out", str(tmp_path / "two"))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert "wrote" in two.stderr
    assert "Traceback" not in two.stderr


def test_killed_parent_stops_its_workers_and_the_eval_resumes(tmp_path: Path) -> None:
    out = tmp_path / "w"
    args = [*CLI, *ARGS, "--model", "fake:0:15", "--workers", "2", "--out", str(out)]
    kill_when(args, lambda: stored_steps(out / "state.db") >= 40)
    time.sleep(2.0)  # the orphaned workers notice within 0.5 s and exit
    settled = stored_steps(out / "state.db")
    time.sleep(1.0)
    assert stored_steps(out / "state.db") == settled, "workers kept running without a parent"
    assert not (out / "summary.json").exists()
    final = run_eval(*ARGS, "--model", "fake:0:15", "--workers", "2", "--out", str(out))
    assert final.returncode == 0, final.stderr
    straight = run_eval(*ARGS, "--model", "fake:0", "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    assert outputs(out) == outputs(tmp_path / "straight")
    assert len([r for r in outputs(out)[1] if r["method"] not in REFERENCES]) == TOTAL


def test_workers_and_shard_do_not_mix(tmp_path: Path) -> None:
    done = run_eval(
        *ARGS, "--model", "fake", "--workers", "2", "--shard", "0/2", "--out", str(tmp_path / "x")
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --workers and --shard do not mix: give one of them"
    ]
    assert not (tmp_path / "x").exists()
