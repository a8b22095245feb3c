"""Two identical evals on one database at once: each unit is computed once, by one of them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.reliability.harness import CLI, REPO, fault_server, record

EVAL = ["eval", "--model", "openai:fault-model", "--tasks", "weather", "--sequences", "2",
        "--steps", "3", "--methods", "zero-shot,fhc,memprompt,rnn", "--budget", "160",
        "--concurrency", "2", "--timeout", "5"]  # fmt: skip


def start(url: str, db: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    return subprocess.Popen(
        [*CLI, *EVAL, "--base-url", url, "--db", str(db), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def results(out: Path) -> dict[str, object]:
    return dict(json.loads((out / "summary.json").read_text())["results"])


def test_two_identical_evals_compute_each_unit_once(tmp_path: Path) -> None:
    with fault_server(latency=0.05) as server:
        alone = start(server.url, tmp_path / "alone.db", tmp_path / "alone")
        assert alone.wait(timeout=300) == 0, alone.communicate()[1]
        one_eval = server.stats()["requests"]
        server.reset()
        pair = [start(server.url, tmp_path / "shared.db", tmp_path / f"out{i}") for i in (1, 2)]
        errors = [p.communicate(timeout=300)[1] for p in pair]
        both = server.stats()["requests"]
    codes = [p.returncode for p in pair]
    record(
        "two identical evals, one database",
        runs=2,
        survived=codes.count(0),
        duplicate_calls=both - one_eval,
    )
    assert codes == [0, 0], errors
    assert not any("error" in e or "Traceback" in e for e in errors), errors
    assert both == one_eval  # every unit computed once, by one process or the other
    assert results(tmp_path / "out1") == results(tmp_path / "out2") == results(tmp_path / "alone")
