"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from llm_as_rnn.evals import metrics as m


def test_accuracy_and_macro_f1() -> None:
    assert m.accuracy([True, False, True, True]) == 0.75
    # labels in targets: a, b. a: tp=1 fp=1 fn=1 -> 2/4=0.5 ; b: tp=1 fp=0 fn=1 -> 2/3
    preds = ["a", "a", "b", None]
    targets = ["a", "b", "b", "a"]
    assert m.macro_f1(preds, targets) == pytest.approx((0.5 + 2 / 3) / 2)
    assert math.isnan(m.macro_f1([], []))


def test_mae_mse() -> None:
    assert m.mae([1.0, -3.0]) == 2.0
    assert m.mse([1.0, -3.0]) == 5.0


def test_error_correction_and_persistence() -> None:
    flags = [True, False, True, True, False, True]  # wrong, right, wrong, wrong, right, wrong
    corrected, after_wrong = m.error_transitions(flags)
    # pairs after a wrong step: (W,R) (W,W) (W,R) -> 2 corrected of 3
    assert (corrected, after_wrong) == (2, 3)
    assert m.error_runs(flags) == [1, 2, 1]


def test_regression_wrong_means_above_median() -> None:
    records = [{"metrics": {"abs_error": e}} for e in (0.1, 0.5, 0.9, 0.2)]
    # median of (0.1, 0.2, 0.5, 0.9) = 0.35
    assert m.wrong_flags(records, "regression") == [False, True, True, False]


def test_mean_ci_t_interval() -> None:
    stat = m.mean_ci([1.0, 2.0, 3.0])
    # sd = 1, n = 3, t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3)
    assert stat["mean"] == 2.0
    assert stat["ci95"] == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)
    assert m.mean_ci([5.0]) == {"mean": 5.0, "ci95": None, "n": 1}


def test_drift() -> None:
    assert m.drift("a b c", "a b c") == 0.0
    assert m.drift("a b", "c d") == 1.0
    # SequenceMatcher ratio of [a,b,c,d] vs [a,b,x,y] = 2*2/8 = 0.5
    assert m.drift("a b c d", "a b x y") == pytest.approx(0.5)


def _rec(step: int, correct: bool, calls: int = 3, memory: str | None = "m") -> dict[str, object]:
    return {
        "step": step,
        "correct": correct,
        "valid": True,
        "target": "sun",
        "prediction": "sun" if correct else "rain",
        "metrics": {"accuracy": float(correct)},
        "calls": calls,
        "prompt_tokens": 100 * step,
        "completion_tokens": 10,
        "retries": 0,
        "usage": {"predictor": {"calls": 1, "prompt_tokens": 50 * step}},
        "memory_tokens": 40 if memory else None,
        "memory_before": "a b",
        "memory": "a c",
    }


def test_summarize_by_hand() -> None:
    seqs = {
        "s1": [_rec(1, False), _rec(2, True), _rec(3, True)],
        "s2": [_rec(1, False), _rec(2, False), _rec(3, True)],
    }
    s = m.summarize(seqs, "classification")
    # per-sequence accuracy 2/3 and 1/3 -> mean 0.5
    assert s["metrics"]["accuracy"]["mean"] == pytest.approx(0.5)
    # wrong->next pairs: s1 (W,R); s2 (W,W),(W,R) -> 2 corrected of 3
    assert s["error_correction"]["rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert s["error_correction"]["persistence"] == pytest.approx(1 / 3, abs=1e-6)
    assert s["cost_per_step"]["calls"] == 3
    assert s["cost_per_step"]["prompt_tokens"] == 200  # (100+200+300)/3
    assert s["memory_tokens"] == 40
    assert s["memory_drift"] == pytest.approx(0.5)  # [a,b] vs [a,c]


def test_curve() -> None:
    records = [
        {"step": 1, "x": {"y": 1.0}},
        {"step": 1, "x": {"y": 3.0}},
        {"step": 2, "x": {"y": 5.0}},
    ]
    assert m.curve(records, "x.y") == {1: 2.0, 2: 5.0}


def test_trailing_mean_averages_up_to_a_window_of_steps() -> None:
    points = {1: 1.0, 2: 0.0, 3: 1.0, 5: 0.0}  # a missing step is skipped, not zero
    assert m.trailing_mean(points, 2) == {1: 1.0, 2: 0.5, 3: 0.5, 5: 0.5}
    assert m.trailing_mean(points, 1) == points
    assert m.trailing_mean({}, 3) == {}


def test_mostly_unreadable_answers_are_warned_about() -> None:
    from llm_as_rnn.evals.runner import invalid_warnings

    rows = [
        {"task": "t", "method": "rnn", "valid": False, "prediction_text": "I cannot tell"},
        {"task": "t", "method": "rnn", "valid": False, "prediction_text": "maybe?"},
        {"task": "t", "method": "rnn", "valid": True, "prediction_text": "Answer: sun"},
        {"task": "t", "method": "fhc", "valid": True, "prediction_text": "Answer: sun"},
        {"task": "t", "method": "fhc", "valid": False, "prediction_text": "?"},
    ]
    (line,) = invalid_warnings(rows)
    assert line.startswith("warning: t/rnn: 2 of 3 answers could not be read")
    assert "'I cannot tell'; 'maybe?'" in line


def test_collapse_is_a_memory_losing_over_half_its_tokens() -> None:
    from llm_as_rnn.evals.metrics import collapse_rate, collapses

    records = [{"step": t, "memory_tokens": n} for t, n in ((2, 90), (1, 100), (3, 40), (4, 30))]
    assert collapses(records) == [False, True, False]  # 100 -> 90 -> 40 (collapse) -> 30
    assert collapse_rate(collapses(records)) == pytest.approx(1 / 3)
    assert collapse_rate([]) is None
