"""The faithful-evaluation command lines: reference rows checked by hand, sweeps, presets."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_eval_cli import run_eval

RUN = [sys.executable, "-m", "llm_as_rnn", "run"]


def by_hand_weather(starts: list[int], steps: int) -> dict[str, float]:
    """Persistence and prior accuracy from the raw Seattle file, thresholds written out."""
    from vega_datasets import local_data

    mm = list(local_data.seattle_weather()["precipitation"])
    classes = ["dry" if p == 0 else "light rain" if p < 5 else "heavy rain" for p in mm]
    persistence, prior = [], []
    for start in starts:
        days = range(start, start + steps)
        persistence.append(statistics.mean(classes[d] == classes[d + 1] for d in days))
        right = []
        for d in days:
            seen = classes[start : d + 1]
            counts = Counter(seen)
            top = max(counts.values())
            guess = next(c for c in reversed(seen) if counts[c] == top)  # tie: most recent
            right.append(guess == classes[d + 1])
        prior.append(statistics.mean(right))
    return {"persistence": statistics.mean(persistence), "prior": statistics.mean(prior)}


def by_hand_sp500(starts: list[int], steps: int) -> dict[str, float]:
    """Persistence, prior and zero MAE from the raw S&P file (returns as the input shows them)."""
    import arch.data.sp500

    close = arch.data.sp500.load()["Close"]
    returns = list(close.pct_change() * 100)
    out: dict[str, list[float]] = {"persistence": [], "prior": [], "zero": []}
    for start in starts:
        days = range(start + 5, start + 5 + steps)
        shown = {d: round(returns[d], 3) for d in days}  # the input prints 3 decimals
        truth = {d: round(returns[d + 1], 4) for d in days}
        out["persistence"].append(statistics.mean(abs(shown[d] - truth[d]) for d in days))
        prior = [abs(statistics.mean(shown[e] for e in days if e <= d) - truth[d]) for d in days]
        out["prior"].append(statistics.mean(prior))
        out["zero"].append(statistics.mean(abs(truth[d]) for d in days))
    return {k: statistics.mean(v) for k, v in out.items()}


def starts(summary: dict[str, Any], task: str) -> list[int]:
    steps = [json.loads(x) for x in summary["steps"]]
    return sorted({int(r["sequence"].split("@")[1]) for r in steps if r["task"] == task})


def test_reference_rows_match_a_hand_computation(tmp_path: Path) -> None:
    out = tmp_path / "e"
    done = run_eval(
        "--tasks",
        "weather,sp500",
        "--methods",
        "persistence,prior,zero-shot,rnn",
        "--model",
        "fake",
        "--sequences",
        "3",
        "--steps",
        "5",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "summary.json").read_text())["results"]
    assert set(results["weather"]) == {"persistence", "prior", "zero-shot", "rnn"}
    assert set(results["sp500"]) == {"persistence", "prior", "zero", "zero-shot", "rnn"}
    lines = {"steps": (out / "steps.jsonl").read_text().splitlines()}
    weather = by_hand_weather(starts(lines, "weather"), 5)
    for method in ("persistence", "prior"):
        got = results["weather"][method]["metrics"]["accuracy"]["mean"]
        assert got == pytest.approx(weather[method], abs=1e-5)
    sp500 = by_hand_sp500(starts(lines, "sp500"), 5)
    for method in ("persistence", "prior", "zero"):
        got = results["sp500"][method]["metrics"]["mae"]["mean"]
        assert got == pytest.approx(sp500[method], abs=1e-5)
        assert results["sp500"][method]["cost_per_step"]["calls"] == 0
    report = (out / "report.md").read_text()
    assert "| persistence |" in report
    assert "| zero |" in report
    assert "## What matches the paper" in report
    assert "labels derived from measured precipitation" in report


def test_a_budget_sweep_runs_each_memory_method_per_budget(tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = ["--tasks", "weather", "--methods", "zero-shot,rnn", "--budgets", "256,1024"]
    done = run_eval(
        *args, "--model", "fake-long", "--sequences", "1", "--steps", "4", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "summary.json").read_text())["results"]["weather"]
    assert set(results) == {"persistence", "prior", "zero-shot", "rnn@256", "rnn@1024"}
    assert results["rnn@256"]["memory_tokens"] <= 256 < results["rnn@1024"]["memory_tokens"]
    for name in ("metric_vs_budget.png", "tokens_vs_budget.png"):
        assert (out / name).stat().st_size > 10_000
    assert "![metric_vs_budget.png]" in (out / "report.md").read_text()
    bad = run_eval(*args[:-1], "256,x", "--model", "fake", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2
    assert "must be positive integers" in bad.stderr


def test_truth_free_judge_sees_no_lagged_truth(tmp_path: Path) -> None:
    out = tmp_path / "t"
    done = run_eval(
        *("--tasks", "weather", "--methods", "rnn-judge", "--truth-free", "--model", "fake"),
        *("--sequences", "1", "--steps", "3", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    steps = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    judged = [r for r in steps if r["method"] == "rnn-judge"]
    assert len(judged) == 3
    for r in judged:
        assert "today's class" not in r["input_text"]
        assert "precipitation" not in r["input_text"]
        assert "max temperature" in r["input_text"]
    assert "judge feedback saw truth-free inputs" in (out / "report.md").read_text()
    refused = subprocess.run(
        [
            *RUN,
            "--task",
            "sp500",
            "--truth-free",
            "--model",
            "fake",
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "cannot hide lagged truth" in refused.stderr
    assert not (tmp_path / "x.db").exists()


def test_preset_help_lists_its_values() -> None:
    shown = subprocess.run(
        [*RUN, "--preset", "paper", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "budget 4096; temperature 0.7, top-p 0.9, max new tokens 4096 for every role" in text
    assert "step mode three-call; feedback supervised" in text


def test_run_with_the_paper_preset_records_its_sampling(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    done = subprocess.run(
        [*RUN, "--preset", "paper", "--model", "fake", "--steps", "2", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    thread = "--thread=weather-start0-supervised"  # the default thread, named: no new one
    again = subprocess.run(
        [*RUN, "--model", "fake", "--steps", "3", "--db", str(db), "--json", thread],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2  # other sampling than the thread was run with
    assert "sampling.predictor.max_new_tokens: 4096 -> 64" in again.stderr


def test_readme_weather_figures_come_from_the_script() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / "weather_labels.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(out.stdout)
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())

    def pct(value: float) -> str:
        return f"{100 * value:.1f}%"

    shares = figures["derived_share"]
    row = " | ".join(pct(shares[k]) for k in ("dry", "light rain", "heavy rain"))
    assert f"| all days | {row} |" in readme
    for year, share in figures["derived_per_year"].items():
        row = " | ".join(pct(share[k]) for k in ("dry", "light rain", "heavy rain"))
        assert f"| {year} | {row} |" in readme
    refs = figures["references_next_day_accuracy"]
    assert f"`weather` persistence {pct(refs['weather']['persistence'])}" in readme
    assert f"running prior {pct(refs['weather']['prior'])}" in readme
    assert f"always `dry` {pct(refs['weather']['always dry'])}" in readme
    assert f"persistence {pct(refs['weather-labels']['persistence'])}" in readme
    assert f"always `sun` {pct(refs['weather-labels']['always sun'])}" in readme
    wet = figures["recorded_label_vs_precipitation"]
    assert wet["2012 drizzle"] == {"days": 31, "mean_mm": 0.0, "share_wet": 0.0}
    assert f"{wet['2014 fog']['mean_mm']} mm in 2014" in readme


def test_reference_rows_alone_need_no_model(tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = run_eval(
        *("--tasks", "weather", "--methods", "persistence,prior", "--model", "fake"),
        *("--sequences", "2", "--steps", "4", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    assert "(no model: reference rows only)" in (out / "report.md").read_text()
    results = json.loads((out / "summary.json").read_text())["results"]["weather"]
    assert set(results) == {"persistence", "prior"}
