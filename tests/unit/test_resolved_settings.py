"""Settings are stored resolved and shown in their flags' words.

What a preset or a default implies is what an evaluation records (``config.json``,
``summary.json``): equal settings resume whether given or implied, no null is shown,
a config file says ``structured = false`` as TOML does, and a refusal to resume says
``on``/``off`` as the flag does. The summary and report say how updates were structured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_as_rnn.frontends.cli import main

EVAL = ["eval", "--model", "fake", "--tasks", "weather", "--methods", "rnn"]
EVAL += ["--sequences", "1", "--steps", "2", "--budget", "200"]


def evaluate(out: Path, *flags: str) -> None:
    assert main([*EVAL, "--out", str(out), *flags]) == 0


def refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command that must be refused; return its one error line."""
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((), ("--structured", "on")),
        (("--structured", "on"), ()),
        (("--preset", "paper"), ("--preset", "paper", "--structured", "off")),
        (("--preset", "paper"), ("--preset", "paper", "--max-new-tokens", "4096")),
    ],
)
def test_equal_settings_resume_whether_given_or_implied(
    tmp_path: Path, first: tuple[str, ...], second: tuple[str, ...]
) -> None:
    evaluate(tmp_path / "o", *first)
    evaluate(tmp_path / "o", *second)


def test_a_preset_s_settings_are_recorded_resolved(tmp_path: Path) -> None:
    evaluate(tmp_path / "o", "--preset", "paper")
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert config["structured"] is False
    assert config["max_new_tokens"] == 4096
    assert summary["config"] == config
    assert summary["structured_updates"] == "off"
    assert "memory updates structured: off" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize(
    ("second", "change"),
    [
        (("--structured", "off"), "structured: on -> off"),
        (("--max-new-tokens", "64"), "max_new_tokens: each role's default -> 64"),
    ],
)
def test_a_refused_resume_names_settings_in_the_flags_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], second: tuple[str, ...], change: str
) -> None:
    evaluate(tmp_path / "o", "--structured", "on")
    line = refusal(capsys, [*EVAL, "--out", str(tmp_path / "o"), *second])
    assert f"other settings ({change})" in line
    assert "null" not in line
    assert "true" not in line


def test_a_run_s_thread_names_its_structured_setting_in_the_flags_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["run", "--model", "fake", "--steps", "2", "--budget", "200", "--thread", "t"]
    run += ["--db", str(tmp_path / "r.db")]
    assert main(run) == 0
    assert "(structured: on -> off)" in refusal(
        capsys, [*run, "--steps", "3", "--structured", "off"]
    )


@pytest.mark.parametrize("value", ["false", '"off"'])
def test_a_config_file_says_structured_as_toml_or_as_the_flag(tmp_path: Path, value: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"structured = {value}\n")
    evaluate(tmp_path / "o", "--config", str(config))
    assert json.loads((tmp_path / "o" / "config.json").read_text())["structured"] is False


def test_a_config_file_error_spells_booleans_as_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("steps = true\n")
    line = refusal(capsys, [*EVAL, "--out", str(tmp_path / "o"), "--config", str(config)])
    assert line.endswith("steps takes a value, not true/false, got true")


def test_the_run_summary_and_report_say_how_updates_were_structured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate(tmp_path / "o")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["structured_updates"] == "ignored (backend cannot constrain)"
    run = ["run", "--model", "fake", "--steps", "2", "--budget", "200", "--db", ":memory:"]
    capsys.readouterr()
    assert main([*run, "--structured", "off"]) == 0
    assert "structured: off" in capsys.readouterr().out
