"""The report's step plots: axes fit the data, budgets labelled, metrics smoothed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn.evals import plots

METHODS = ["persistence", "prior", "rnn", "rnn@128", "rnn@512"]


def records(steps: int = 8) -> list[dict[str, Any]]:
    """Return step records: references without memory, memory methods at 60-130 tokens."""
    out = []
    for method in METHODS:
        for t in range(1, steps + 1):
            memory = None if method in ("persistence", "prior") else 50 + 10 * t
            out.append({
                "task": "t", "method": method, "sequence": "s", "step": t,
                "metrics": {"accuracy": float(t % 2)}, "memory_tokens": memory,
                "prompt_tokens": 0 if memory is None else 900,
            })  # fmt: skip
    return out


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Draw the step plots, keeping each figure's axes instead of writing it."""
    kept: dict[str, Any] = {}

    def keep(plt: Any, fig: Any, path: Path) -> str:
        kept[path.name] = fig.axes[0]
        return path.name

    monkeypatch.setattr(plots, "save", keep)
    results = {"t": {m: {"metrics": {"accuracy": {"mean": 0.5, "n": 2}}} for m in METHODS}}
    plots.plot_curves(Path("."), records(), results, budget=4096)
    yield kept
    for ax in kept.values():
        plots.pyplot().close(ax.figure)


def legend(ax: Any) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_memory_axis_fits_the_memories_and_names_far_budgets(figures: dict[str, Any]) -> None:
    ax = figures["memory_tokens_vs_step.png"]
    low, high = ax.get_ylim()
    assert low == 0
    assert 130 <= high < 200  # memories reach 130, not squashed under 4096
    # each method's own budget: rnn@128 near the data gets a line, the others are named above
    lines = [line.get_label() for line in ax.get_lines() if list(line.get_ydata()) == [128, 128]]
    assert lines == ["budget 128"]
    assert {"budget 512 (above)", "budget 4096 (above)"} <= set(legend(ax))


def test_token_plots_leave_out_the_reference_rows(figures: dict[str, Any]) -> None:
    for name in ("prompt_tokens_vs_step.png", "memory_tokens_vs_step.png"):
        assert not {"persistence", "prior"} & set(legend(figures[name]))


def test_the_step_metric_is_a_running_mean_beside_the_references(
    figures: dict[str, Any],
) -> None:
    ax = figures["metric_vs_step.png"]
    assert "running mean of the last 5 steps" in ax.get_title()
    assert {"persistence", "prior", "rnn"} <= set(legend(ax))
    rnn = next(line for line in ax.get_lines() if line.get_label() == "rnn")
    # 1, 0, 1, 0, ... averaged over up to 5 steps: no longer a zigzag between 0 and 1
    assert list(rnn.get_ydata()) == pytest.approx([1, 0.5, 2 / 3, 0.5, 0.6, 0.4, 0.6, 0.4])
    reference = next(line for line in ax.get_lines() if line.get_label() == "prior")
    assert reference.get_color() == "grey"
