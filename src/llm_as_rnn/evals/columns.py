"""The results table's columns, declared once in reading order: report.md and the terminal.

``GROUPS`` fixes the order: the task's headline metric (mean ± 95% t-interval
over sequences, in one cell), which answers count (coverage, invalid), the
task's other metrics, calibration, learning, then cost. A column shows when
any row has a value. A metric that no column declares still shows, last,
under its raw name marked "(undeclared)": the report is written at the end of
a long run, so it neither fails there nor drops a number; a unit test fails
until the metric is declared in its group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_as_rnn.core.rejections import rejections_line
from llm_as_rnn.errors import counted

SMALL_N = 5
"""Below this many sequences a table gets a line saying its intervals are rough."""

Cell = Callable[[dict[str, Any]], str | None]
"""Reads a method's summary and returns its cell's text, or None when it has no value."""


@dataclass(frozen=True)
class Column:
    """One column of the results table."""

    header: str
    cell: Cell
    metric: str | None = None
    """The summary metric it shows (``summary["metrics"]`` key), if it shows one."""
    step_metric: str | None = None
    """The per-step metric (``steps.jsonl`` ``metrics`` key) whose mean is ``metric``."""
    better: str = ""
    """Which way a headline metric is better: "higher" or "lower"."""


def interval(stat: dict[str, Any] | None) -> str | None:
    """Return ``mean ± half-width`` (no ± without an interval), or None without a mean."""
    if not stat or stat.get("mean") is None:
        return None
    ci = f" ± {stat['ci95']:.3f}" if stat.get("ci95") is not None else ""
    return f"{stat['mean']:.3f}{ci}"


def metric(name: str, header: str, better: str = "", step: str | None = None) -> Column:
    """Return the column of one summary metric (per-step metric: the same name unless given)."""
    return Column(header, lambda s: interval(s["metrics"].get(name)), name, step or name, better)


def number(read: Callable[[dict[str, Any]], float | None], digits: int) -> Cell:
    """Return a cell that prints one number of a method's summary."""

    def cell(summary: dict[str, Any]) -> str | None:
        value = read(summary)
        return None if value is None else f"{value:.{digits}f}"

    return cell


def invalid(summary: dict[str, Any]) -> float | None:
    """Return the share of unreadable answers, None where ``coverage`` already says it."""
    return None if "coverage" in summary["metrics"] else summary["invalid_rate"]


def correction(summary: dict[str, Any]) -> str | None:
    """Return the error-correction rate with its counts, e.g. ``0.500 (2/4)``."""
    ec = summary["error_correction"]
    if ec["rate"] is None:
        return None
    return f"{ec['rate']:.3f} ({ec['wrong_then_right']}/{ec['wrong_steps_followed']})"


def ece(summary: dict[str, Any]) -> float | None:
    """Return the expected calibration error (choice mode), else None."""
    calibration = summary.get("calibration")
    return calibration["ece"] if calibration else None


def rejected(summary: dict[str, Any]) -> str | None:
    """Return the rewrites rejected by kind, e.g. ``1 of 6 (drastic shrink 1)``; None: none made."""
    counts = summary.get("rewrites")
    return rejections_line(counts, lead="") if counts and counts["rewrites"] else None


HEADLINE = (
    metric("accuracy", "accuracy", "higher"),
    metric("acc1_code", "Acc@1 (code)", "higher"),
    metric("mae", "MAE", "lower", step="abs_error"),
)
"""Candidates for a task's headline metric, the first a task has wins."""

GROUPS: tuple[tuple[str, tuple[Column, ...]], ...] = (
    ("headline", HEADLINE),
    (
        "answers",
        (
            metric("coverage", "coverage"),
            Column("invalid", number(invalid, 2)),
        ),
    ),
    (
        "task",
        (
            metric("macro_f1", "macro-F1"),
            metric("acc_at_2", "Acc@2"),
            metric("acc5_code", "Acc@5 (code)"),
            metric("acc1_category", "Acc@1 (category)"),
            metric("acc5_category", "Acc@5 (category)"),
            metric("acc1_chapter", "Acc@1 (chapter)"),
            metric("acc5_chapter", "Acc@5 (chapter)"),
            metric("mse", "MSE", step="sq_error"),
            metric("direction", "direction"),
        ),
    ),
    (
        "calibration",
        (
            metric("log_loss", "log-loss"),
            metric("brier", "Brier"),
            Column("ECE", number(ece, 3)),
            metric("lift_nats", "lift (nats)"),
            metric("lift_positive", "lift > 0"),
        ),
    ),
    (
        "learning",
        (
            Column("error correction", correction),
            Column("drift", number(lambda s: s["memory_drift"], 3)),
            Column("collapse", number(lambda s: s.get("memory_collapse"), 3)),
            Column("rewrites rejected", rejected),
        ),
    ),
    (
        "cost",
        (
            Column("calls/step", number(lambda s: s["cost_per_step"]["calls"], 2)),
            Column("prompt tokens/step", number(lambda s: s["cost_per_step"]["prompt_tokens"], 1)),
            Column(
                "completion tokens/step",
                number(lambda s: s["cost_per_step"].get("completion_tokens"), 1),
            ),
            Column("memory tokens", number(lambda s: s["memory_tokens"], 1)),
        ),
    ),
)
"""Every column in reading order, by group: a new metric goes into its group here."""

COLUMNS = tuple(column for _, group in GROUPS for column in group)
"""Every declared column, in order."""


def undeclared(methods: dict[str, Any]) -> list[str]:
    """Return the summary metrics of a task that no column declares, sorted."""
    declared = {c.metric for c in COLUMNS}
    return sorted({n for s in methods.values() for n in s["metrics"]} - declared)


def shown(methods: dict[str, Any]) -> list[Column]:
    """Return the columns of one task's table: declared order, then any undeclared metric."""
    extra = [metric(name, f"{name} (undeclared)") for name in undeclared(methods)]
    return [c for c in [*COLUMNS, *extra] if filled(c, methods)]


def filled(column: Column, methods: dict[str, Any]) -> bool:
    """Return whether any method has a value in ``column``."""
    return any(column.cell(s) is not None for s in methods.values())


def headline(methods: dict[str, Any]) -> Column | None:
    """Return a task's headline metric column (accuracy, Acc@1 or MAE), None if it has none."""
    return next((c for c in HEADLINE if filled(c, methods)), None)


def sizes(methods: dict[str, Any], column: Column) -> dict[str, int]:
    """Return per method the number of sequences its ``column`` interval is over."""
    stats = {m: s["metrics"].get(column.metric) for m, s in methods.items()}
    return {m: st["n"] for m, st in stats.items() if st and st.get("n")}


def small_n_note(methods: dict[str, Any]) -> str | None:
    """Return the line that flags a task's intervals as rough below ``SMALL_N`` sequences."""
    column = headline(methods)
    ns = sorted(set(sizes(methods, column).values())) if column else []
    if not ns or ns[0] >= SMALL_N:
        return None
    if ns[-1] == 1:
        return "One sequence per method: no interval; raise --sequences for one."
    over = counted(ns[0], "sequence") if len(ns) == 1 else f"{ns[0]} to {ns[-1]} sequences"
    return (
        f"Intervals over {over} are wide: read them as rough "
        f"(--sequences {SMALL_N} or more narrows them)."
    )


def markdown_table(results: dict[str, Any]) -> list[str]:
    """Return the Markdown results: one table per task, one row per method."""
    lines: list[str] = []
    for task, methods in results.items():
        columns = shown(methods)
        head = ["method", *(c.header for c in columns)]
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, summary in methods.items():
            cells = [method, *(c.cell(summary) or "–" for c in columns)]
            lines.append("| " + " | ".join(cells) + " |")
        note = small_n_note(methods)
        lines += ["", note, ""] if note else [""]
    return lines


def terminal_table(results: dict[str, Any]) -> list[str]:
    """Return a short plain-text table: per task, each method's headline metric and n."""
    lines: list[str] = []
    for task, methods in results.items():
        column = headline(methods)
        if column is None:
            continue
        n = sizes(methods, column)
        rows = [
            ["method", f"{column.header} ({column.better} is better)", "n"],
            *([m, column.cell(s) or "–", str(n.get(m, 0))] for m, s in methods.items()),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines.append(f"{task}: {column.header}, mean ± 95% interval over n sequences")
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        note = small_n_note(methods)
        lines += [f"  {note}"] if note else []
    return lines
