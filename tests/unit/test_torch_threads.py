"""PyTorch's thread count on the torch thread: LLM_AS_RNN_TORCH_THREADS, else 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.threads import THREADS_ENV, torch_threads


def test_one_thread_unless_the_variable_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert torch_threads() == 1
    monkeypatch.setenv(THREADS_ENV, " ")
    assert torch_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "3")
    assert torch_threads() == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", "+3"])
def test_a_bad_count_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(ConfigError, match=f"{THREADS_ENV} must be a positive integer"):
        torch_threads()


SHOW = (
    "import torch\n"
    "from llm_as_rnn.runtime.local import torch_thread\n"
    "print(torch_thread().submit(torch.get_num_threads).result())\n"
)


@pytest.mark.parametrize("count", ["1", "2", ""])
def test_the_torch_thread_runs_with_that_many_threads(count: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SHOW],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, THREADS_ENV: count},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (count or "1")


def test_the_cli_refuses_a_bad_count_in_one_line_before_writing(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_as_rnn",
            "run",
            "--model",
            f"hf:{tmp_path}/m",
            "--steps",
            "1",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, THREADS_ENV: "many"},
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {THREADS_ENV} must be a positive integer")
    assert not db.exists()
