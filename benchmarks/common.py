"""Shared helpers of the benchmark scripts (each prints one JSON object last)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


QUICK_ENV = "LLM_AS_RNN_BENCH_QUICK"
"""Set to 1 by ``make bench-quick``: every benchmark runs in its reduced size."""


def quick() -> bool:
    """Return whether this is a quick run (``make bench-quick``): same keys, smaller sizes."""
    return os.environ.get(QUICK_ENV) == "1"


def sized(full: int, reduced: int) -> int:
    """Return ``full``, or ``reduced`` in a quick run (repetitions, steps, sequences)."""
    return reduced if quick() else full


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    """Return the median of one figure over repetitions."""
    return float(statistics.median(r[key] for r in runs))


def repeat(
    measure: Callable[[], dict[str, Any]], times: int, warmup: int = 0
) -> list[dict[str, Any]]:
    """Run a measurement several times (this machine is noisy: report medians).

    ``warmup`` runs come first and are not kept: the process's first pass
    through the code pays one-time costs (lazy imports, first allocations).
    """
    for i in range(warmup):
        print(f"  warm-up {i + 1}/{warmup}: {json.dumps(measure())}", file=sys.stderr)
    runs = []
    for i in range(times):
        runs.append(measure())
        print(f"  repetition {i + 1}/{times}: {json.dumps(runs[-1])}", file=sys.stderr)
    return runs


@dataclass
class Evaluation:
    """What an evaluation run in a temporary folder wrote."""

    summary: dict[str, Any]
    timing: dict[str, Any]
    steps: list[dict[str, Any]]


async def evaluate(**fields: Any) -> Evaluation:
    """Run the eval runner with these ``EvalConfig`` fields in a temporary folder."""
    from rich.console import Console

    from llm_as_rnn.evals.config import EvalConfig
    from llm_as_rnn.evals.runner import run_eval

    with tempfile.TemporaryDirectory() as tmp:
        config = EvalConfig(out=tmp, **fields)
        summary = await run_eval(config, "benchmark", Console(stderr=True, quiet=True))
        out = Path(tmp)
        timing = json.loads((out / "timing.json").read_text())
        steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    return Evaluation(summary, timing, steps)


EMBEDDED_WEATHER: dict[str, Any] = {
    "model": "embedded",
    "tasks": ["weather"],
    "methods": ["rnn"],
    "budget": 256,
    "seed": 4,
}
"""The eval settings of the bundled-model benchmarks (small budget: a 135M model)."""


def rewrite_prompts(starts: list[int]) -> list[Any]:
    """Return the weather rewriter's prompt for the day at each start index (h_0, wrong "dry").

    The model writes at length after these, so decoding (not prefill) dominates.
    """
    from llm_as_rnn import get_task
    from llm_as_rnn.core import prompts
    from llm_as_rnn.data import weather

    task = get_task("weather")
    chats = []
    for start in starts:
        o = weather.window(start, 1)[0]
        chats.append(
            prompts.rewrite_messages(
                task,
                task.initial_memory(),
                task.render_input(o["input"]),
                "dry",
                f"Predicted dry; the truth was {o['target']}.",
                256,
                1,
            )
        )
    return chats


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's single JSON result line."""
    print(json.dumps(result, sort_keys=True))
