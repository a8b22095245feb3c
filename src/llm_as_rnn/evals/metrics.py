"""Pure metric functions over step records (no model, no I/O).

A step record here is one line of ``steps.jsonl`` (see ``llm_as_rnn.evals.records``).

Definitions:
- a step is *wrong* when its prediction is incorrect (classification; an
  invalid answer is wrong), or, for regression, when it has no readable
  answer or its absolute error is above the median absolute error of its
  sequence's valid answers (same method);
- regression errors (MAE, MSE, direction) are over valid answers only, with
  ``coverage`` (the share of steps with a readable answer) beside them;
- error-correction rate: P(right at t+1 | wrong at t), pooled over every
  consecutive pair of every sequence; error persistence: P(wrong at t+1 |
  wrong at t) = 1 - correction rate, plus the mean length of error runs;
- memory drift between consecutive memories: 1 - difflib similarity ratio of
  their word sequences (0 = unchanged, 1 = nothing in common); memory
  collapse: the share of steps whose memory has under half the tokens of
  the step before (ACE's "context collapse");
- choice mode: log-loss -log p(truth), Brier score sum_k (p_k - 1[k = truth])^2,
  Acc@2, expected calibration error over 10 equal-width confidence bins
  (pooled steps), and the memory's lift log p(truth | h_{t-1}) - log p(truth | h_0)
  in nats, with the share of steps where it is positive.
"""

from __future__ import annotations

import difflib
import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from llm_as_rnn.core.rejections import rejections
from llm_as_rnn.errors import require


def accuracy(correct: Sequence[bool]) -> float:
    """Return the share of correct steps."""
    return sum(correct) / len(correct) if correct else math.nan


def macro_f1(predictions: Sequence[Any], targets: Sequence[Any]) -> float:
    """Return the macro-F1 over the labels present in the targets.

    An invalid prediction (None) counts as a miss for its target's label.
    """
    labels = sorted(set(targets), key=str)
    if not labels:
        return math.nan
    scores = []
    for label in labels:
        tp = sum(p == label and t == label for p, t in zip(predictions, targets, strict=True))
        fp = sum(p == label and t != label for p, t in zip(predictions, targets, strict=True))
        fn = sum(p != label and t == label for p, t in zip(predictions, targets, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores)


def mae(errors: Sequence[float]) -> float:
    """Return the mean absolute error of signed or absolute errors."""
    return sum(abs(e) for e in errors) / len(errors) if errors else math.nan


def mse(errors: Sequence[float]) -> float:
    """Return the mean squared error."""
    return sum(e * e for e in errors) / len(errors) if errors else math.nan


def wrong_flags(records: Sequence[dict[str, Any]], kind: str) -> list[bool]:
    """Return, per step, whether it counts as wrong (see module docstring)."""
    if kind == "regression":
        errors = [r["metrics"].get("abs_error") for r in records]
        valid = [e for e in errors if e is not None]
        median = statistics.median(valid) if valid else 0.0
        return [e is None or e > median for e in errors]  # no answer: wrong
    return [not r["correct"] for r in records]


def error_transitions(flags: Sequence[bool]) -> tuple[int, int]:
    """Return (wrong-then-right, wrong-then-anything) counts over consecutive steps."""
    corrected = sum(a and not b for a, b in itertools.pairwise(flags))
    after_wrong = sum(a for a in flags[:-1])
    return corrected, after_wrong


def error_runs(flags: Sequence[bool]) -> list[int]:
    """Return the lengths of the maximal runs of wrong steps."""
    runs, current = [], 0
    for wrong in flags:
        if wrong:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


def drift(before: str, after: str) -> float:
    """Return 1 - similarity of two memories' word sequences."""
    return 1.0 - difflib.SequenceMatcher(None, before.split(), after.split()).ratio()


def collapses(records: Sequence[dict[str, Any]]) -> list[bool]:
    """Return, per step after a sequence's first, whether its memory lost over half its tokens.

    A step's ``memory_tokens`` is compared with the previous step's.
    """
    sized = sorted(
        (r for r in records if r.get("memory_tokens") is not None), key=lambda r: r["step"]
    )
    return [b["memory_tokens"] < 0.5 * a["memory_tokens"] for a, b in itertools.pairwise(sized)]


def collapse_rate(flags: Sequence[bool]) -> float | None:
    """Return the share of steps whose memory collapsed (None without memories)."""
    return round(sum(flags) / len(flags), 6) if flags else None


def mean_ci(values: Iterable[float]) -> dict[str, float | None]:
    """Return the mean and the 95% t-interval half-width over sequences."""
    data = [v for v in values if not math.isnan(v)]
    if not data:
        return {"mean": None, "ci95": None, "n": 0}
    mean = sum(data) / len(data)
    if len(data) < 2:
        return {"mean": round(mean, 6), "ci95": None, "n": len(data)}
    t = require("scipy.stats", "evals").t
    half = t.ppf(0.975, len(data) - 1) * statistics.stdev(data) / math.sqrt(len(data))
    return {"mean": round(mean, 6), "ci95": round(float(half), 6), "n": len(data)}


def sequence_metrics(records: Sequence[dict[str, Any]], kind: str) -> dict[str, float]:
    """Return one sequence's task metrics (means of step metrics, plus macro-F1)."""
    out: dict[str, float] = {}
    keys = dict.fromkeys(k for r in records for k in r["metrics"])
    for key in keys:  # each over the steps that have it (errors: valid answers only)
        values = [r["metrics"][key] for r in records if key in r["metrics"]]
        out[key] = sum(values) / len(values)
    if kind == "regression":
        out["mae"] = out.pop("abs_error", math.nan)
        out["mse"] = out.pop("sq_error", math.nan)
        out.setdefault("direction", math.nan)
    elif all(isinstance(r["target"], str) for r in records):
        out["macro_f1"] = macro_f1(
            [r["prediction"] for r in records], [r["target"] for r in records]
        )
    return out


def cost_per_step(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Return mean calls and tokens per step, in total and per role."""
    n = len(records) or 1
    out = {
        "calls": sum(r["calls"] for r in records) / n,
        "prompt_tokens": sum(r["prompt_tokens"] for r in records) / n,
        "completion_tokens": sum(r["completion_tokens"] for r in records) / n,
        "retries": sum(r.get("retries", 0) for r in records) / n,
    }
    per_role: dict[str, float] = defaultdict(float)
    for r in records:
        for role, usage in r["usage"].items():
            per_role[f"{role}_calls"] += usage["calls"] / n
            per_role[f"{role}_prompt_tokens"] += usage["prompt_tokens"] / n
    return out | dict(sorted(per_role.items()))


def summarize(by_sequence: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    """Summarize one task x method over its sequences (means with 95% CIs)."""
    per_seq = {sid: sequence_metrics(recs, kind) for sid, recs in by_sequence.items()}
    names = sorted({k for m in per_seq.values() for k in m})
    metrics = {name: mean_ci(m.get(name, math.nan) for m in per_seq.values()) for name in names}
    corrected = after_wrong = 0
    runs: list[int] = []
    for recs in by_sequence.values():
        flags = wrong_flags(recs, kind)
        c, w = error_transitions(flags)
        corrected, after_wrong = corrected + c, after_wrong + w
        runs += error_runs(flags)
    every = [r for recs in by_sequence.values() for r in recs]
    memories = [r for r in every if r.get("memory_tokens") is not None]
    drifts = [drift(r["memory_before"], r["memory"]) for r in memories if r.get("memory_before")]
    collapse = collapse_rate([r for recs in by_sequence.values() for r in collapses(recs)])
    bins = reliability_bins(every)
    ece = expected_calibration_error(bins)
    return {
        "sequences": len(by_sequence),
        "steps": len(every),
        "calibration": {"ece": round(ece, 6), "bins": bins} if ece is not None else None,
        "metrics": metrics,
        "error_correction": {
            "rate": round(corrected / after_wrong, 6) if after_wrong else None,
            "persistence": round(1 - corrected / after_wrong, 6) if after_wrong else None,
            "wrong_then_right": corrected,
            "wrong_steps_followed": after_wrong,
            "mean_error_run": round(sum(runs) / len(runs), 6) if runs else None,
        },
        "cost_per_step": {k: round(v, 6) for k, v in cost_per_step(every).items()},
        "memory_tokens": round(sum(r["memory_tokens"] for r in memories) / len(memories), 6)
        if memories
        else None,
        "memory_drift": round(sum(drifts) / len(drifts), 6) if drifts else None,
        "memory_collapse": collapse,
        "rewrites": rejections(every),
        "invalid_rate": round(sum(not r["valid"] for r in every) / len(every), 6)
        if every
        else None,
    }


def reliability_bins(records: Sequence[dict[str, Any]], bins: int = 10) -> list[dict[str, float]]:
    """Return the reliability diagram's bins of steps with a label distribution.

    A step's confidence is its top probability; it is right when that label is
    the truth. Bins split [0, 1] evenly; empty bins are left out.
    """
    pooled: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for r in records:
        dist = r.get("distribution")
        if not dist:
            continue
        top = max(dist, key=lambda label: dist[label])
        confidence = dist[top]
        pooled[min(int(confidence * bins), bins - 1)].append((confidence, top == r["target"]))
    return [
        {
            "low": i / bins,
            "high": (i + 1) / bins,
            "confidence": sum(c for c, _ in b) / len(b),
            "accuracy": sum(ok for _, ok in b) / len(b),
            "steps": len(b),
        }
        for i, b in enumerate(pooled)
        if b
    ]


def expected_calibration_error(bins: Sequence[dict[str, float]]) -> float | None:
    """Return the ECE: the steps-weighted mean gap between confidence and accuracy."""
    steps = sum(b["steps"] for b in bins)
    if not steps:
        return None
    return sum(b["steps"] * abs(b["confidence"] - b["accuracy"]) for b in bins) / steps


def curve(records: Iterable[dict[str, Any]], field: str) -> dict[int, float]:
    """Return the mean of ``field`` (a dotted path) per timestep."""
    sums: dict[int, list[float]] = defaultdict(list)
    for r in records:
        value: Any = r
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            sums[r["step"]].append(float(value))
    return {t: sum(v) / len(v) for t, v in sorted(sums.items())}


def trailing_mean(points: dict[int, float], window: int) -> dict[int, float]:
    """Return each point as the mean of itself and the ``window - 1`` points before it.

    The first points average what there is (a window of 3 gives t=1 alone, then t=1..2).
    """
    values = list(points.values())
    out = {}
    for i, t in enumerate(points):
        part = values[max(0, i - window + 1) : i + 1]
        out[t] = sum(part) / len(part)
    return out
