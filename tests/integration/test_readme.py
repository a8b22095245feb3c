"""Every code block of the README runs as written (the way langmem tests its examples).

Blocks run in README order in one scratch folder, so a later block sees the
files an earlier one wrote (``trace`` reads the database of ``run``):

- ``python``: written to a file and run;
- ``bash``: run with ``bash -e``, the package's commands on ``PATH``;
- ``csv NAME``: written to ``NAME`` for the blocks after it;
- ``toml``: a config file is loaded by the CLI's own config loader; a
  ``pyproject.toml`` excerpt is parsed and its entry point group checked;
- ``text``: program output or a diagram, not code: not collected.

For speed, the bundled model is swapped for the deterministic fake one
(``embedded`` -> ``fake``) except in ``make demo``, which runs the bundled
model as written. A block that needs a GPU server or is this suite itself is
skipped with the reason below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_as_rnn.frontends.cli.parser import build_parser, load_config
from llm_as_rnn.tasks import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^( *)```(\w*)(?: (\S+))?\n(.*?)^\1```\s*$", re.M | re.S)

SKIPS = {
    "make test": "it is this test suite itself",
    "vllm serve": "needs a GPU server for Llama-3.1-8B (tests/integration/"
    "test_openai_backend.py drives a real OpenAI-compatible server)",
    "postgresql://app@db": "needs a PostgreSQL server at db:5432 (tests/integration/"
    "test_postgres.py runs this shard split against a real one)",
    "langgraph dev": "an interactive server (tests/integration/test_studio.py starts it "
    "and drives two steps)",
}
"""A block containing the key is skipped, for the reason given."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int
    lang: str
    name: str | None
    code: str


def blocks() -> list[Block]:
    """Return the README's code blocks (``text`` ones excluded), in order."""
    text = README.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        indent, lang, name, code = match.groups()
        if lang == "text":
            continue
        code = "\n".join(line.removeprefix(indent) for line in code.splitlines()) + "\n"
        found.append(Block(text[: match.start()].count("\n") + 1, lang, name, code))
    return found


def fake(code: str) -> str:
    """Swap the bundled model for the deterministic fake one."""
    return (
        code.replace("--model embedded", "--model fake")
        .replace('model="embedded"', 'model="fake"')
        .replace('"model": "embedded"', '"model": "fake"')
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch folder every block runs in."""
    return tmp_path_factory.mktemp("readme")


def run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_readme_has_the_blocks_this_suite_expects() -> None:
    langs = [b.lang for b in blocks()]
    assert langs.count("python") >= 4
    assert langs.count("bash") >= 8
    assert set(langs) <= {"python", "bash", "csv", "toml"}, langs


@pytest.mark.parametrize("block", blocks(), ids=lambda b: f"line{b.line}-{b.lang}")
def test_readme_block(block: Block, workspace: Path) -> None:
    reason = next((why for key, why in SKIPS.items() if key in block.code), None)
    if reason is not None and "make demo" not in block.code:
        pytest.skip(f"README line {block.line}: {reason}")  # reasons: SKIPS above
    if block.lang == "csv":
        assert block.name, f"line {block.line}: a csv block needs a file name"
        (workspace / block.name).write_text(block.code, encoding="utf-8")
    elif block.lang == "toml":
        check_toml(block, workspace)
    elif block.lang == "python":
        script = workspace / f"readme_{block.line}.py"
        script.write_text(fake(block.code), encoding="utf-8")
        out = run([sys.executable, str(script)], workspace, timeout=300)
        assert out.returncode == 0, f"README line {block.line}:\n{out.stderr[-3000:]}"
        assert out.stdout.strip(), f"README line {block.line} printed nothing"
    elif "make demo" in block.code:
        # The bundled model, as written; under load (two CPU hogs) it took ~14 min here.
        out = run(["make", "demo"], ROOT, timeout=2400)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "memory after step 6" in out.stdout
        # choice mode: a label distribution at every step, no invalid prediction
        assert out.stdout.count("│ labels ") == 6
        assert "· invalid 0" in out.stdout
        assert "Converting and de-quantizing" not in out.stdout + out.stderr
    else:
        out = run(["bash", "-e", "-c", fake(block.code)], workspace, timeout=600)
        assert out.returncode == 0, f"README line {block.line}:\n{out.stderr[-3000:]}"


def check_toml(block: Block, workspace: Path) -> None:
    """Check a TOML block: a config file the CLI loads, or a pyproject excerpt."""
    data = tomllib.loads(block.code)
    if "project" in data:
        groups = data["project"]["entry-points"]
        assert ENTRY_POINT_GROUP in groups, groups
        return
    path = workspace / "config.toml"
    path.write_text(block.code, encoding="utf-8")
    parser = build_parser()
    for command in ("run", "eval"):
        if command in data or all(not isinstance(v, dict) for v in data.values()):
            assert load_config(str(path), parser.commands[command])
