"""Shared helpers of the benchmark scripts (each prints one JSON object last)."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    """Return the median of one figure over repetitions."""
    return float(statistics.median(r[key] for r in runs))


def repeat(measure: Callable[[], dict[str, Any]], times: int) -> list[dict[str, Any]]:
    """Run a measurement several times (this machine is noisy: report medians)."""
    runs = []
    for i in range(times):
        runs.append(measure())
        print(f"  repetition {i + 1}/{times}: {json.dumps(runs[-1])}", file=sys.stderr)
    return runs


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's single JSON result line."""
    print(json.dumps(result, sort_keys=True))
