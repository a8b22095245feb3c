"""The evaluation's plots (PNG): metrics and tokens against the timestep and the budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_as_rnn.errors import require
from llm_as_rnn.evals.columns import headline
from llm_as_rnn.evals.config import REFERENCES, base_method, method_budget
from llm_as_rnn.evals.metrics import curve, trailing_mean
from llm_as_rnn.runtime.paths import replacing

PLOTS = (
    "metric_vs_step.png",
    "prompt_tokens_vs_step.png",
    "memory_tokens_vs_step.png",
    "metric_vs_budget.png",
    "tokens_vs_budget.png",
    "reliability.png",
    "lift_vs_step.png",
)
"""Every plot's file name: ``eval`` declares them as outputs, ``save`` writes no other."""


def pyplot() -> Any:
    """Return matplotlib's pyplot on the file-only backend."""
    matplotlib = require("matplotlib", "evals")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


SMOOTHING = 5
"""Steps in the trailing mean of the per-step metric and lift plots."""
REFERENCE_STYLE = dict(zip(REFERENCES, ("--", ":", "-."), strict=True))
"""Reference rows are grey lines in these styles, so the methods stand out against them."""


def smoothing(records: list[dict[str, Any]]) -> int:
    """Return the trailing-mean window: ``SMOOTHING`` steps, fewer for shorter sequences."""
    return min(SMOOTHING, max((r["step"] for r in records), default=1))


def draw_steps(
    ax: Any,
    records: list[dict[str, Any]],
    task: str,
    methods: list[str],
    field: str,
    window: int = 1,
    references: bool = True,
) -> list[str]:
    """Plot each method's per-step mean of ``field`` (trailing mean over ``window`` steps).

    Reference rows are grey lines; each model method keeps its colour in every plot.
    Return the methods drawn.
    """
    models = [m for m in methods if m not in REFERENCE_STYLE]
    drawn = []
    for method in methods:
        style: dict[str, Any]
        if method in REFERENCE_STYLE:
            if not references:
                continue
            style = {"color": "grey", "linestyle": REFERENCE_STYLE[method]}
        else:
            style = {"color": f"C{models.index(method) % 10}", "marker": "o", "markersize": 3}
        rows = (r for r in records if r["task"] == task and r["method"] == method)
        points = trailing_mean(curve(rows, field), window)
        if points:
            ax.plot(list(points), list(points.values()), label=method, **style)
            drawn.append(method)
    return drawn


def budget_marks(ax: Any, budgets: list[int]) -> None:
    """Draw each memory budget as a labelled line when near the data, else name it in the legend.

    The axis fits the memories, from 0 (a few tokens' change is not a climb): a
    budget far above them would flatten them to a line.
    """
    ax.set_ylim(bottom=0)
    top = ax.get_ylim()[1]
    style = {"color": "grey", "linestyle": "--", "linewidth": 1}
    for budget in budgets:
        if budget <= 1.5 * top:
            ax.axhline(budget, label=f"budget {budget}", **style)
        else:  # a legend entry only
            ax.plot([], [], label=f"budget {budget} (above)", **style)


def step_axis(ax: Any, title: str, ylabel: str) -> None:
    """Title, integer timestep axis, grid and legend of a per-step plot.

    A single timestep gets a step of room either side: matplotlib's own
    margin around one point is a few hundredths, ticked 0.95, 0.975, ...
    """
    from matplotlib.ticker import MaxNLocator

    ax.set(title=title, xlabel="timestep t", ylabel=ylabel)
    low, high = ax.get_xlim()
    if high - low < 2:
        middle = round((low + high) / 2)
        ax.set_xlim(middle - 1, middle + 1)
        ax.set_xticks([middle])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # outside: eight methods would hide the lines
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))


def smoothed(title: str, window: int) -> str:
    """Return a title that says its curve is a trailing mean (when it is one)."""
    return f"{title}\nrunning mean of the last {window} steps or fewer" if window > 1 else title


def plot_curves(
    out: Path, records: list[dict[str, Any]], results: dict[str, Any], budget: int | None = None
) -> list[str]:
    """Draw the task metric, prompt tokens and memory tokens against t; return file names.

    The metric is smoothed and drawn with the reference rows; tokens show model methods.
    """
    plt = pyplot()
    tasks = list(results)
    window = smoothing(records)
    written = []
    for filename in (
        "metric_vs_step.png",
        "prompt_tokens_vs_step.png",
        "memory_tokens_vs_step.png",
    ):
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.8 * len(tasks), 3.8), squeeze=False)
        drawn = False
        for ax, task in zip(axes[0], tasks, strict=True):
            methods = list(results[task])
            column = headline(results[task])
            if filename == "metric_vs_step.png" and column:
                field = f"metrics.{column.step_metric}"
                drawn |= bool(draw_steps(ax, records, task, methods, field, window))
                step_axis(ax, smoothed(f"{task}: {column.header}", window), column.header)
            elif filename != "metric_vs_step.png":  # tokens: references have none
                field = filename.removesuffix("_vs_step.png")
                shown = draw_steps(ax, records, task, methods, field, references=False)
                if field == "memory_tokens":  # a swept method's own budget, else --budget
                    budgets = {method_budget(m) or budget for m in shown}
                    budget_marks(ax, sorted(b for b in budgets if b is not None))
                drawn |= bool(shown)
                ax.set_ylim(bottom=0)
                name = field.replace("_", " ")
                step_axis(ax, f"{task}: {name} per step", name)
        if drawn:
            written.append(save(plt, fig, out / filename))
        else:
            plt.close(fig)
    return written


def budget_points(
    methods: dict[str, Any], value: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """Return ``{memory method: ([budgets], [values])}`` of a sweep's ``method@budget`` rows."""
    points: dict[str, tuple[list[int], list[Any]]] = {}
    for method, stats in methods.items():
        budget = method_budget(method)
        if budget is None:
            continue
        xs, ys = points.setdefault(base_method(method), ([], []))
        xs.append(budget)
        ys.append(value(stats))
    return {
        m: tuple(zip(*sorted(zip(xs, ys, strict=True)), strict=True))
        for m, (xs, ys) in points.items()
    }


def budget_axis(ax: Any, methods: dict[str, Any], title: str, ylabel: str) -> None:
    """Put the swept budgets on a log x axis (plain numbers); title, labels, grid, legend."""
    from matplotlib.ticker import NullLocator

    budgets = sorted({b for b in map(method_budget, methods) if b is not None})
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_title(title)
    ax.set_xlabel("budget lambda (tokens)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def metric_of(name: str) -> Callable[[dict[str, Any]], Any]:
    """Return a reader of one metric's statistics in a method's summary."""
    return lambda stats: stats["metrics"].get(name)


def plot_budgets(out: Path, results: dict[str, Any]) -> list[str]:
    """Draw the budget sweep: the task metric and the tokens against lambda; return file names."""
    tasks = [t for t, methods in results.items() if any(method_budget(m) for m in methods)]
    if not tasks:
        return []
    plt = pyplot()
    written = []
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        column = headline(results[task])
        name = column.metric if column and column.metric else ""
        for method, (xs, stats) in budget_points(results[task], metric_of(name)).items():
            means = [st["mean"] if st and st["mean"] is not None else float("nan") for st in stats]
            errors = [st["ci95"] or 0.0 if st else 0.0 for st in stats]
            ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=method)
        for reference, style in REFERENCE_STYLE.items():
            stat = results[task].get(reference, {}).get("metrics", {}).get(name)
            if stat and stat["mean"] is not None:
                ax.axhline(stat["mean"], color="grey", linestyle=style, label=reference)
        if not name.startswith(("mae", "mse")):
            ax.set_ylim(-0.02, 1.02)  # a share: intervals beyond [0, 1] say only "few sequences"
        budget_axis(ax, results[task], f"{task}: {name} vs memory budget", name)
    written.append(save(plt, fig, out / "metric_vs_budget.png"))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        methods = results[task]
        for method, (xs, memory) in budget_points(methods, lambda s: s["memory_tokens"]).items():
            ax.plot(xs, memory, marker="o", label=f"{method}: memory tokens")
        for method, (xs, cost) in budget_points(
            methods, lambda s: s["cost_per_step"]["prompt_tokens"]
        ).items():
            ax.plot(xs, cost, marker="s", linestyle=":", label=f"{method}: prompt tokens/step")
        every = sorted({b for b in map(method_budget, methods) if b is not None})
        ax.plot(every, every, color="grey", linestyle="--", linewidth=1, label="lambda")
        ax.set_yscale("log")
        budget_axis(ax, methods, f"{task}: tokens vs memory budget", "tokens")
    written.append(save(plt, fig, out / "tokens_vs_budget.png"))
    return written


def save(plt: Any, fig: Any, path: Path) -> str:
    """Write a figure as PNG (whole or not at all), close it, and return its file name."""
    if path.name not in PLOTS:
        raise ValueError(f"plot {path.name} is not in PLOTS: declare it there")
    fig.tight_layout()
    try:
        with replacing(path) as handle:
            fig.savefig(handle, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path.name


def plot_choice(out: Path, records: list[dict[str, Any]], results: dict[str, Any]) -> list[str]:
    """Draw the reliability diagram and the memory's lift against t (choice mode)."""
    tasks = [t for t, ms in results.items() if any(s.get("calibration") for s in ms.values())]
    if not tasks:
        return []
    plt = pyplot()
    written = []
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
        for method, stats in results[task].items():
            calibration = stats.get("calibration")
            if calibration:
                bins = calibration["bins"]
                ax.plot(
                    [b["confidence"] for b in bins],
                    [b["accuracy"] for b in bins],
                    marker="o",
                    label=f"{method} (ECE {calibration['ece']:.3f})",
                )
        ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), title=f"{task}: reliability")
        ax.set(xlabel="confidence (top label's probability)", ylabel="accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    written.append(save(plt, fig, out / "reliability.png"))
    window = smoothing(records)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.8 * len(tasks), 3.8), squeeze=False)
    drawn = False
    for ax, task in zip(axes[0], tasks, strict=True):
        ax.axhline(0, color="grey", linewidth=1)
        lift = "metrics.lift_nats"
        drawn |= bool(draw_steps(ax, records, task, list(results[task]), lift, window))
        ylabel = "log p(truth | h_t-1) - log p(truth | h_0), nats"
        step_axis(ax, smoothed(f"{task}: memory lift", window), ylabel)
    if drawn:
        written.append(save(plt, fig, out / "lift_vs_step.png"))
    else:
        plt.close(fig)
    return written
