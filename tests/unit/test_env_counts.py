"""Every count a local model reads from the environment is refused alike when it is bad.

The variables are found, not listed: every ``*_ENV`` constant of the runtime
modules that names an ``LLM_AS_RNN_`` variable. Each is read through one
parser (``runtime.engine.env_count``), checked once before a run
(``runtime.resolve.check_local_settings``): a bad value is one line naming the
variable, exit 2, nothing written. Before, three of the four silently fell
back to their default on a bad value while the fourth refused it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llm_as_rnn.runtime
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.resolve import LOCAL_SETTINGS, check_local_settings


def count_variables() -> list[str]:
    """Return every ``LLM_AS_RNN_`` variable named by a runtime module's ``*_ENV`` constant."""
    found = set()
    for info in pkgutil.iter_modules(llm_as_rnn.runtime.__path__):
        module = importlib.import_module(f"llm_as_rnn.runtime.{info.name}")
        for name, value in vars(module).items():
            if name.endswith("_ENV") and str(value).startswith("LLM_AS_RNN_"):
                found.add(str(value))
    return sorted(found)


VARIABLES = count_variables()


def test_the_four_counts_are_found() -> None:
    assert set(VARIABLES) >= {
        "LLM_AS_RNN_LOCAL_BATCH",
        "LLM_AS_RNN_LABEL_CHUNK",
        "LLM_AS_RNN_PREFIX_CACHE_MB",
        "LLM_AS_RNN_TORCH_THREADS",
    }


def test_the_help_of_run_and_eval_names_every_count(capsys: pytest.CaptureFixture[str]) -> None:
    from llm_as_rnn.frontends.cli.parser import build_parser

    assert sorted(LOCAL_SETTINGS) == VARIABLES  # the list the CLI shows is every count found
    for command in ("run", "eval"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        shown = " ".join(capsys.readouterr().out.split())  # help text wraps anywhere
        assert all(variable in shown for variable in VARIABLES), command


@pytest.mark.parametrize("variable", VARIABLES)
@pytest.mark.parametrize("bad", ["many", "-1", "2.5", "\u00b2", "\u0663", "1e3", "99999999999"])
def test_a_bad_value_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, bad: str
) -> None:
    """Superscript and Arabic-Indic digits pass ``str.isdigit``: only ASCII digits are counts."""
    monkeypatch.setenv(variable, bad)
    with pytest.raises(
        ConfigError, match=f"^{variable} must be (a positive integer|an integer >= 0|at most)"
    ):
        check_local_settings()
    monkeypatch.setenv(variable, " 3 ")
    check_local_settings()  # a good value afterwards is taken: nothing stays refused


@pytest.mark.parametrize("variable", VARIABLES)
def test_the_cli_refuses_it_in_one_line_before_writing(tmp_path: Path, variable: str) -> None:
    db = tmp_path / "t.db"
    run = ["run", "--model", f"hf:{tmp_path}/m", "--steps", "1", "--db", str(db)]
    out = subprocess.run(
        [sys.executable, "-m", "llm_as_rnn", *run],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, variable: "many"},
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {variable} must be"), lines[0]
    assert "set it like" in lines[0]
    assert not db.exists()


def test_the_readme_quotes_the_refusal_as_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_AS_RNN_LOCAL_BATCH", "many")
    with pytest.raises(ConfigError) as refused:
        check_local_settings()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"error: {refused.value}\n" in readme


@pytest.mark.parametrize("variable", VARIABLES)
def test_the_library_refuses_it_before_loading_a_local_model(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """``aresolve`` (every node, ``run_sequence``, ``OnlineLearner``): not a failed pass later."""
    import asyncio

    from llm_as_rnn.runtime.resolve import Resolver
    from llm_as_rnn.runtime.spec import Endpoint, ModelSpec, parse_spec

    built: list[ModelSpec] = []

    async def on_thread(fn: Any, *args: Any) -> Any:
        return fn(*args)

    resolver = Resolver(build=lambda spec, endpoint: built.append(spec), on_thread=on_thread)
    spec = parse_spec("hf:/nowhere/model")
    monkeypatch.setenv(variable, "many")
    with pytest.raises(ConfigError, match=f"^{variable} must be"):
        asyncio.run(resolver(spec, Endpoint()))
    assert built == []  # nothing loaded
    monkeypatch.delenv(variable)
    asyncio.run(resolver(spec, Endpoint()))
    assert built  # the same resolver works once the value is fixed


@pytest.mark.parametrize("variable", VARIABLES)
def test_leading_zeros_and_the_largest_count_are_numbers(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    from llm_as_rnn.runtime.engine import MAX_COUNT, env_count

    for raw, value in [("08", 8), ("0" * 40 + "5", 5), (str(MAX_COUNT), MAX_COUNT)]:
        monkeypatch.setenv(variable, raw)
        assert env_count(variable, 1, "a count", 2, "for the default") == value
    for huge in (str(MAX_COUNT + 1), "9" * 41, "9" * 5000):
        monkeypatch.setenv(variable, huge)
        with pytest.raises(ConfigError, match=f"at most {MAX_COUNT:,} .*got '{huge[:20]}"):
            env_count(variable, 1, "a count", 2, "for the default")


def test_torch_threads_are_at_most_four_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_as_rnn.runtime.threads import THREADS_ENV, cores, torch_threads

    monkeypatch.setenv(THREADS_ENV, str(4 * cores()))
    assert torch_threads() == 4 * cores()
    monkeypatch.setenv(THREADS_ENV, str(4 * cores() + 1))
    with pytest.raises(ConfigError, match=f"must be at most {4 * cores()} "):
        check_local_settings()  # refused before a thread pool of that size is made
