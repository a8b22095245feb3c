"""Evaluation outputs: steps.jsonl, summary.json, timing.json, report.md and plots."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from llm_as_rnn.errors import require
from llm_as_rnn.evals.config import EvalConfig
from llm_as_rnn.evals.metrics import curve

PACKAGES = (
    "llm-as-rnn",
    "langgraph",
    "langchain-core",
    "langchain-openai",
    "langchain-huggingface",
    "transformers",
    "torch",
)


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


LABELS = {"accuracy": "accuracy", "abs_error": "absolute error", "acc1_code": "Acc@1 (code)"}


def _fmt(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    ci = f" ± {stat['ci95']:.3f}" if stat.get("ci95") is not None else ""
    return f"{stat['mean']:.3f}{ci}"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def results_table(results: dict[str, Any]) -> list[str]:
    """Return the Markdown results: one table per task, one row per method."""
    lines: list[str] = []
    for task, methods in results.items():
        names = sorted({n for m in methods.values() for n in m["metrics"]})
        head = [
            "method",
            *names,
            "error correction",
            "calls/step",
            "prompt tokens/step",
            "memory tokens",
            "invalid",
        ]
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, s in methods.items():
            ec = s["error_correction"]
            counts = f" ({ec['wrong_then_right']}/{ec['wrong_steps_followed']})"
            cells = [
                method,
                *(_fmt(s["metrics"].get(n)) for n in names),
                _num(ec["rate"], 3) + (counts if ec["rate"] is not None else ""),
                _num(s["cost_per_step"]["calls"], 2),
                _num(s["cost_per_step"]["prompt_tokens"]),
                _num(s["memory_tokens"]),
                _num(s["invalid_rate"], 2),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_curves(
    out: Path, records: list[dict[str, Any]], results: dict[str, Any], budget: int | None = None
) -> list[str]:
    """Draw metric, prompt tokens and memory tokens against the timestep; return file names."""
    matplotlib = require("matplotlib", "evals")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
        fig.tight_layout()
        if drawn:
            fig.savefig(out / filename, dpi=110)
            plots.append(filename)
        plt.close(fig)
    return plots


def versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape results."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    return found


def write_outputs(
    out: Path,
    command: str,
    cfg: EvalConfig,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    timing: dict[str, Any],
    model_name: str,
) -> None:
    """Write every output file of an evaluation."""
    with (out / "steps.jsonl").open("w") as handle:
        for r in records:
            handle.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "timing.json").write_text(json.dumps(timing, indent=2, sort_keys=True) + "\n")
    plots = plot_curves(out, records, summary["results"], cfg.budget)
    lines = [
        "# LLM-as-RNN evaluation",
        "",
        f"Command: `{command}`",
        "",
        f"Model: `{cfg.model}` ({model_name}); written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "",
        f"{cfg.sequences} sequences x {cfg.steps} steps per task; "
        f"memory budget {cfg.budget} tokens; "
        f"seed {cfg.seed}. Metrics: mean ± 95% t-interval over sequences. Error correction: "
        "P(right at t+1 | wrong at t), pooled (counts in brackets). Regression steps count as "
        "wrong when their error is above their sequence's median.",
        "",
        "## Results",
        "",
        *results_table(summary["results"]),
        "",
        "## Latency (model time per step, seconds)",
        "",
        "| task | method | s/step |",
        "|---|---|---|",
        *(
            f"| {t} | {m} | {v['latency_s_per_step']:.3f} |"
            for t, ms in timing["latency"].items()
            for m, v in ms.items()
        ),
        "",
        "## Plots",
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
