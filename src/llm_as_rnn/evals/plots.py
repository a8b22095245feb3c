"""The evaluation's plots (PNG): metrics and tokens against the timestep and the budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_as_rnn.errors import require
from llm_as_rnn.evals.config import REFERENCES, base_method, method_budget
from llm_as_rnn.evals.metrics import curve
from llm_as_rnn.runtime.paths import replacing

LABELS = {"accuracy": "accuracy", "abs_error": "absolute error", "acc1_code": "Acc@1 (code)"}
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


def primary_metric(task_summary: dict[str, Any]) -> tuple[str, str]:
    """Return (summary metric, per-step metric) to headline for a task."""
    names = next(iter(task_summary.values()))["metrics"].keys() if task_summary else []
    for summary_name, step_name in (
        ("accuracy", "accuracy"),
        ("acc1_code", "acc1_code"),
        ("mae", "abs_error"),
    ):
        if summary_name in names:
            return summary_name, step_name
    return "", ""


def pyplot() -> Any:
    """Return matplotlib's pyplot on the file-only backend."""
    matplotlib = require("matplotlib", "evals")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    out: Path, records: list[dict[str, Any]], results: dict[str, Any], budget: int | None = None
) -> list[str]:
    """Draw metric, prompt tokens and memory tokens against the timestep; return file names."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    tasks = list(results)
    plots = []
    specs: list[tuple[str, str, Callable[[str], str]]] = [
        ("metric_vs_step.png", "task metric", lambda t: f"metrics.{primary_metric(results[t])[1]}"),
        ("prompt_tokens_vs_step.png", "prompt tokens per step", lambda t: "prompt_tokens"),
        ("memory_tokens_vs_step.png", "memory tokens", lambda t: "memory_tokens"),
    ]
    for filename, ylabel, field in specs:
        fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
        drawn = False
        for ax, task in zip(axes[0], tasks, strict=True):
            for method in results[task]:
                points = curve(
                    (r for r in records if r["task"] == task and r["method"] == method), field(task)
                )
                if points:
                    ax.plot(list(points), list(points.values()), marker="o", label=method)
                    drawn = True
            step_metric = primary_metric(results[task])[1]
            name = LABELS.get(step_metric, step_metric) if filename.startswith("metric") else ylabel
            if filename.startswith("memory") and budget is not None:
                ax.axhline(budget, color="grey", linestyle="--", linewidth=1, label="budget")
            ax.set_title(f"{task}: {name}")
            ax.set_xlabel("timestep t")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        if drawn:
            plots.append(save(plt, fig, out / filename))
        else:
            plt.close(fig)
    return plots


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
        name = primary_metric(results[task])[0]
        for method, (xs, stats) in budget_points(results[task], metric_of(name)).items():
            means = [st["mean"] if st and st["mean"] is not None else float("nan") for st in stats]
            errors = [st["ci95"] or 0.0 if st else 0.0 for st in stats]
            ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=method)
        for style, reference in zip(("--", ":", "-."), REFERENCES, strict=True):
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
    from matplotlib.ticker import MaxNLocator

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
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    drawn = False
    for ax, task in zip(axes[0], tasks, strict=True):
        ax.axhline(0, color="grey", linewidth=1)
        for method in results[task]:
            points = curve(
                (r for r in records if r["task"] == task and r["method"] == method),
                "metrics.lift_nats",
            )
            if points:
                ax.plot(list(points), list(points.values()), marker="o", label=method)
                drawn = True
        ax.set(title=f"{task}: memory lift", xlabel="timestep t")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(ylabel="log p(truth | h_t-1) - log p(truth | h_0), nats")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if drawn:
        written.append(save(plt, fig, out / "lift_vs_step.png"))
    else:
        plt.close(fig)
    return written
