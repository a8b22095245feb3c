"""An API key given by flag or environment is never written anywhere."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.reliability.harness import CLI, REPO, fault_server, record, run_args

KEY = "sk-test-SECRET-0123456789abcdef"


def test_api_key_never_stored(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    outputs: list[str] = []
    with fault_server(seed=8) as server:
        by_flag = subprocess.run(
            [*run_args(server.url, tmp_path / "s.db", "s", 3), "--api-key", KEY],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        by_env = subprocess.run(
            [
                *CLI,
                "eval",
                "--tasks",
                "weather",
                "--methods",
                "zero-shot,rnn",
                "--sequences",
                "1",
                "--steps",
                "2",
                "--model",
                "openai:fault-model",
                "--base-url",
                server.url,
                "--api-key",
                KEY,
                "--out",
                str(tmp_path / "eval"),
            ],
            capture_output=True,
            text=True,
            env={**env, "OPENAI_API_KEY": KEY},
            cwd=REPO,
            timeout=120,
        )
        seen = server.stats()["bearer"]
    for done in (by_flag, by_env):
        assert done.returncode == 0, done.stderr[-2000:]
        outputs += [done.stdout, done.stderr]
    assert KEY in seen  # the key really was used
    leaks = [p.name for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    leaks += ["output" for text in outputs if KEY in text]
    record(
        "secrets",
        runs=2,
        survived=2,
        files_checked=sum(1 for p in tmp_path.rglob("*") if p.is_file()),
        leaks=len(leaks),
    )
    assert leaks == []
    assert "--api-key REDACTED" in (tmp_path / "eval" / "report.md").read_text()
