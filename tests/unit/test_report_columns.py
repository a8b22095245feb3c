"""The results table: columns declared once in reading order, rough intervals flagged."""

from __future__ import annotations

from typing import Any

import pytest

from llm_as_rnn.evals.columns import (
    GROUPS,
    headline,
    markdown_table,
    shown,
    small_n_note,
    terminal_table,
    undeclared,
)
from llm_as_rnn.evals.metrics import mean_ci, summarize
from llm_as_rnn.evals.records import step_record
from llm_as_rnn.runtime.usage import Usage
from llm_as_rnn.tasks import Task, get_task
from llm_as_rnn.tasks.mimic import MimicTask

USAGE: dict[str, Usage] = {
    "predictor": {
        "calls": 1,
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "latency_s": 0.1,
        "retries": 0,
    }
}
CHOICE = {"dry": 0.6, "light rain": 0.3, "heavy rain": 0.1}
CHOICE_H0 = {"dry": 0.4, "light rain": 0.4, "heavy rain": 0.2}
DIAGNOSIS = {"code": "I10", "version": 10}
CASES: dict[str, tuple[Task, list[tuple[Any, Any]]]] = {
    # task: (task, [(answer, target)] per step): every kind of step the package scores
    "classification": (get_task("weather"), [("dry", "dry"), (None, "dry"), ("dry", "heavy rain")]),
    "regression": (get_task("sp500"), [(0.5, 0.2), (None, 0.1), (-1.0, 0.3)]),
    "mimic": (MimicTask(), [(["I10", "E11"], DIAGNOSIS), (None, DIAGNOSIS), (["E11"], DIAGNOSIS)]),
}


def summary_of(kind: str, sequences: int = 2, memory: bool = True) -> dict[str, Any]:
    """Return the summary of a memory method over real step records of every kind of step."""
    task, steps = CASES[kind]
    choice = kind == "classification"
    by_sequence = {
        f"s{s}": [
            step_record(
                task,
                "rnn",
                f"s{s}",
                t,
                None,
                "x",
                target,
                (answer, str(answer)),
                USAGE,
                distribution=CHOICE if choice else None,
                distribution_h0=CHOICE_H0 if choice else None,
                memory_before="a b" if memory else None,
                memory="a c" if memory else None,
                memory_tokens=40 + 10 * t + s if memory else None,
            )
            for t, (answer, target) in enumerate(steps, start=1)
        ]
        for s in range(sequences)
    }
    return summarize(by_sequence, task.kind)


@pytest.mark.parametrize("kind", list(CASES))
def test_every_metric_the_package_scores_has_a_declared_column(kind: str) -> None:
    methods = {"rnn": summary_of(kind)}
    assert undeclared(methods) == []
    headers = [c.header for c in shown(methods)]
    assert not [h for h in headers if "undeclared" in h]


def headers(methods: dict[str, Any]) -> list[str]:
    return markdown_table({"t": methods})[2].strip("| ").split(" | ")


COST = ["calls/step", "prompt tokens/step", "completion tokens/step", "memory tokens"]
LEARNING = ["error correction", "drift", "collapse"]


def test_a_classification_table_reads_metric_answers_calibration_learning_cost() -> None:
    assert headers({"rnn": summary_of("classification")}) == [
        "method", "accuracy", "invalid", "macro-F1", "Acc@2",
        "log-loss", "Brier", "ECE", "lift (nats)", "lift > 0", *LEARNING, *COST,
    ]  # fmt: skip


def test_a_regression_table_reads_mae_coverage_task_metrics_learning_cost() -> None:
    # invalid answers are said by coverage (its complement, with an interval) in regression
    assert headers({"rnn": summary_of("regression")}) == [
        "method", "MAE", "coverage", "MSE", "direction", *LEARNING, *COST,
    ]  # fmt: skip


def test_a_mimic_table_leads_with_acc1_code() -> None:
    assert headers({"rnn": summary_of("mimic")})[:3] == ["method", "Acc@1 (code)", "invalid"]


def test_a_column_no_row_fills_is_left_out() -> None:
    assert "memory tokens" not in headers({"zero-shot": summary_of("regression", memory=False)})


def test_an_undeclared_metric_is_shown_last_and_named_as_such() -> None:
    summary = summary_of("classification")
    summary["metrics"]["new_score"] = {"mean": 0.25, "ci95": 0.5, "n": 2}
    methods = {"rnn": summary}
    assert undeclared(methods) == ["new_score"]
    table = markdown_table({"t": methods})
    assert headers(methods)[-1] == "new_score (undeclared)"
    assert table[4].endswith("| 0.250 ± 0.500 |")


def test_groups_are_ordered_and_every_column_is_in_one() -> None:
    names = [name for name, _ in GROUPS]
    assert names == ["headline", "answers", "task", "calibration", "learning", "cost"]
    every = [c.header for _, group in GROUPS for c in group]
    assert len(every) == len(set(every))


def stat(n: int) -> dict[str, Any]:
    return mean_ci([0.5, 0.75, 0.25, 1.0, 0.0, 0.5][:n])


@pytest.mark.parametrize(
    ("ns", "note"),
    [
        ([2, 2], "Intervals over 2 sequences are wide: read them as rough"),
        ([4], "Intervals over 4 sequences are wide"),
        ([2, 3], "Intervals over 2 to 3 sequences are wide"),
        ([1, 1], "One sequence per method: no interval; raise --sequences for one."),
        ([5, 5], None),
        ([6], None),
    ],
)
def test_few_sequences_get_a_line_saying_the_intervals_are_rough(
    ns: list[int], note: str | None
) -> None:
    methods = {f"m{i}": summary_of("classification") for i in range(len(ns))}
    for summary, n in zip(methods.values(), ns, strict=True):
        summary["metrics"]["accuracy"] = stat(n)
    line = small_n_note(methods)
    if note is None:
        assert line is None
    else:
        assert line is not None
        assert line.startswith(note)
    assert (line in markdown_table({"t": methods})) == (line is not None)


def test_the_terminal_table_shows_the_report_headline_cells_and_n() -> None:
    weather = {"prior": summary_of("classification"), "rnn": summary_of("classification", 3)}
    results = {"weather": weather, "sp500": {"rnn": summary_of("regression", 6)}}
    lines = terminal_table(results)
    report = {row.split(" | ")[0]: row.split(" | ")[1] for row in markdown_table(results)[4:6]}
    assert lines == [
        "weather: accuracy, mean ± 95% interval over n sequences",
        "  method  accuracy (higher is better)  n",
        f"  prior   {report['| prior']:<27}  2",
        f"  rnn     {report['| rnn']:<27}  3",
        "  Intervals over 2 to 3 sequences are wide: read them as rough "
        "(--sequences 5 or more narrows them).",
        "sp500: MAE, mean ± 95% interval over n sequences",
        "  method  MAE (lower is better)  n",
        f"  rnn     {interval_of(results['sp500']['rnn'], 'mae'):<21}  6",
    ]


def interval_of(summary: dict[str, Any], name: str) -> str:
    stat = summary["metrics"][name]
    return f"{stat['mean']:.3f} ± {stat['ci95']:.3f}"


def test_the_headline_is_the_first_declared_metric_a_task_has() -> None:
    column = headline({"rnn": summary_of("regression")})
    assert column is not None
    assert column.step_metric == "abs_error"
    assert headline({"rnn": {"metrics": {}}}) is None
