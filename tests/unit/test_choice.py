"""Choice mode: label distributions, never-invalid answers, calibration and memory lift."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import build_graph, open_storage, read_trace, run_sequence
from llm_as_rnn.core.choice import argmax, distribution, truth_logprob
from llm_as_rnn.core.memory import invariant_violations
from llm_as_rnn.data import bundled_window
from llm_as_rnn.evals.metrics import expected_calibration_error, reliability_bins
from llm_as_rnn.evals.records import distribution_metrics
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.testing import FunctionChatModel, rule_based, rule_scorer
from tests.conftest import make_context
from tests.reliability.fault_server import HOSTILE
from tests.unit.test_eval_cli import run_eval


def test_distribution_is_a_softmax_of_label_logprobs() -> None:
    dist = distribution(["a", "b"], [math.log(0.2), math.log(0.6)])  # renormalised over labels
    assert dist == {"a": 0.25, "b": 0.75}
    assert argmax(dist) == "b"
    assert argmax({"a": 0.5, "b": 0.5}) == "a"  # a tie goes to the first label
    assert truth_logprob(dist, "a") == pytest.approx(math.log(0.25))
    assert truth_logprob({"a": 1.0, "b": 0.0}, "b") == pytest.approx(math.log(1e-12))


def test_distribution_metrics_by_hand() -> None:
    dist = {"dry": 0.5, "light rain": 0.3, "heavy rain": 0.2}
    h0 = {"dry": 0.6, "light rain": 0.2, "heavy rain": 0.2}
    m = distribution_metrics(dist, "light rain", h0)
    assert m["log_loss"] == pytest.approx(-math.log(0.3))
    assert m["brier"] == pytest.approx(0.5**2 + 0.7**2 + 0.2**2)
    assert m["acc_at_2"] == 1.0
    assert m["lift_nats"] == pytest.approx(math.log(0.3) - math.log(0.2))
    assert m["lift_positive"] == 1.0
    assert "lift_nats" not in distribution_metrics(dist, "dry", None)


def test_reliability_bins_and_ece_by_hand() -> None:
    records = [
        {"distribution": {"a": 0.95, "b": 0.05}, "target": "a"},
        {"distribution": {"a": 0.92, "b": 0.08}, "target": "b"},
        {"distribution": {"a": 0.35, "b": 0.65}, "target": "b"},
        {"distribution": None, "target": "a"},  # a free-mode step: not pooled
    ]
    bins = reliability_bins(records)
    assert [(b["low"], b["steps"]) for b in bins] == [(0.6, 1), (0.9, 2)]
    assert bins[1]["confidence"] == pytest.approx(0.935)
    assert bins[1]["accuracy"] == pytest.approx(0.5)
    # ECE = (1 * |0.65 - 1| + 2 * |0.935 - 0.5|) / 3
    assert expected_calibration_error(bins) == pytest.approx((0.35 + 2 * 0.435) / 3)
    assert expected_calibration_error([]) is None


async def run(ctx: Any, steps: int, thread: str = "c") -> list[Any]:
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    days = bundled_window("weather", 0, steps)
    await run_sequence(graph, days, thread_id=thread, context=ctx)
    return await read_trace(store, thread)


async def test_choice_predictions_are_never_invalid_and_carry_the_lift() -> None:
    ctx = make_context("fake", task="weather", answer_mode="choice", budget=1024)
    records = await run(ctx, 5)
    for r in records:
        prediction = r["prediction"]
        dist = prediction["distribution"]
        assert prediction["valid"]
        assert set(dist) == {"dry", "light rain", "heavy rain"}
        assert sum(dist.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["answer"] == argmax(dist)
        assert r["usage"]["predictor"]["completion_tokens"] == 0  # scored, not generated
    first = records[0]["prediction"]
    assert first["distribution_h0"] == first["distribution"]  # h_{0} is the memory at step 1
    assert records[0]["usage"]["predictor"]["calls"] == 1
    later = [r for r in records[1:] if r["memory_before"] != records[0]["memory_before"]]
    assert later
    assert all(r["usage"]["predictor"]["calls"] == 2 for r in later)  # h_{t-1} and h_0
    assert any(r["prediction"]["distribution_h0"] != r["prediction"]["distribution"] for r in later)


async def test_a_model_that_cannot_score_answers_freely_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = FunctionChatModel(respond=rule_based(0))  # no scorer
    ctx = make_context(plain, task="weather", answer_mode="choice")
    with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
        records = await run(ctx, 3, "plain")
    assert all(r["prediction"].get("distribution") is None for r in records)
    assert all(r["prediction"]["text"].startswith("Answer:") for r in records)
    warnings = [m for m in caplog.messages if "cannot score labels" in m]
    assert len(warnings) == 1


def test_choice_eval_writes_calibration_and_lift(tmp_path: Path) -> None:
    out = tmp_path / "c"
    done = run_eval(
        *("--tasks", "weather", "--methods", "zero-shot,rnn", "--answer-mode", "choice"),
        *("--model", "fake", "--sequences", "2", "--steps", "5", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "summary.json").read_text())["results"]["weather"]
    for method in ("zero-shot", "rnn"):
        assert results[method]["invalid_rate"] == 0.0
        assert results[method]["calibration"]["ece"] >= 0.0
        for name in ("log_loss", "brier", "acc_at_2"):
            assert results[method]["metrics"][name]["n"] == 2
    assert results["rnn"]["metrics"]["lift_nats"]["n"] == 2
    assert "lift_nats" not in results["zero-shot"]["metrics"]  # no memory, no lift
    report = (out / "report.md").read_text()
    assert report.index("## Memory lift") < report.index("## Results")
    for name in ("reliability.png", "lift_vs_step.png"):
        assert (out / name).stat().st_size > 10_000


RUN = [sys.executable, "-m", "llm_as_rnn", "run", "--task", "weather", "--answer-mode", "choice"]


def trace_of(db: Path, thread: str) -> list[Any]:
    async def read() -> list[Any]:
        async with open_storage(str(db)) as (_, store):
            return await read_trace(store, thread)

    return asyncio.run(read())


def killed_and_straight(run: list[str], tmp_path: Path, budget: int) -> tuple[Any, Any]:
    """Run 12 steps straight, and again killed (SIGKILL) mid-step 3 times then resumed.

    Returns both traces (thread ``t``): a resumed run must equal the straight one.
    """
    common = ["--steps", "12", "--budget", str(budget), "--thread", "t", "--json"]
    straight = subprocess.run(
        [*run, *common, "--model", "fake:0", "--db", str(tmp_path / "a.db")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stderr
    db = tmp_path / "b.db"
    slow = [*run, *common, "--model", "fake:0:40", "--db", str(db)]
    for _ in range(3):
        proc = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline()  # one more step finished: kill mid-way through the next
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    final = subprocess.run(slow, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    b = trace_of(db, "t")
    assert [r["step"] for r in b] == list(range(1, 13))
    return trace_of(tmp_path / "a.db", "t"), b


def test_killed_choice_run_resumes_to_the_same_trace(tmp_path: Path) -> None:
    a, b = killed_and_straight(RUN, tmp_path, 512)

    def key(r: Any) -> Any:
        return (r["step"], r["prediction"], r["memory_after"], r["feedback"]["text"])

    assert [key(r) for r in a] == [key(r) for r in b]


async def test_hostile_critic_and_rewriter_in_choice_mode() -> None:
    base, scorer = rule_based(0), rule_scorer(0)
    draws = iter(range(10_000))

    def hostile(messages: list[Any]) -> str:
        n = next(draws)
        return HOSTILE[n % len(HOSTILE)] if n % 2 else base(messages)

    model = FunctionChatModel(respond=hostile, scorer=scorer)
    ctx = make_context(model, task="weather", answer_mode="choice", budget=160)
    records = await run(ctx, 12, "hostile")
    assert [r["step"] for r in records] == list(range(1, 13))
    sections = ("PATTERNS", "RECENT ERRORS", "RULES OF THUMB")
    for r in records:
        assert r["prediction"]["valid"]  # the predictor scores: hostile text cannot reach it
        assert invariant_violations(r["memory_after"], sections, 160, approx_tokens) == []
    assert any(r["rewrite_rejected"] for r in records)
