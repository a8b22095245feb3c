"""Measure the Seattle weather labels: drift of the recorded ones, the derived scheme, references.

Prints one JSON object; the README's "Weather labels" section quotes it.
Run: ``.venv/bin/python scripts/weather_labels.py``.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from typing import Any

from llm_as_rnn.data import bundled_window
from llm_as_rnn.data.weather import days
from llm_as_rnn.evals.references import answers
from llm_as_rnn.tasks import get_task


def per_year(frame: Any, column: str) -> dict[str, dict[str, float]]:
    """Return each year's label shares."""
    shares = frame.groupby(frame["date"].dt.year)[column].value_counts(normalize=True)
    out: dict[str, dict[str, float]] = {}
    for (year, label), share in shares.items():
        out.setdefault(str(year), {})[str(label)] = round(float(share), 3)
    return out


def references(task_name: str) -> dict[str, float]:
    """Return next-day accuracy of the reference rows over every day of the data."""
    task = get_task(task_name)
    observations = bundled_window(task_name, 0, days() - 1)
    targets = [o["target"] for o in observations]
    out = {}
    for method in ("persistence", "prior"):
        guesses = answers(task, method, observations)
        out[method] = round(
            sum(g == t for g, t in zip(guesses, targets, strict=True)) / len(targets), 3
        )
    majority, _ = Counter(targets).most_common(1)[0]
    out[f"always {majority}"] = round(targets.count(majority) / len(targets), 3)
    return out


def main() -> None:
    """Print the measurements as one JSON object."""
    warnings.filterwarnings("ignore", module="vega_datasets")
    from vega_datasets import local_data

    from llm_as_rnn.tasks.weather import precipitation_class

    frame = local_data.seattle_weather()
    frame["derived"] = frame["precipitation"].map(precipitation_class)
    wet = frame.assign(wet=frame["precipitation"] > 0)
    recorded_vs_rain = {
        f"{year} {label}": {
            "days": len(g),
            "mean_mm": round(float(g["precipitation"].mean()), 2),
            "share_wet": round(float(g["wet"].mean()), 2),
        }
        for (year, label), g in wet.groupby([wet["date"].dt.year, "weather"])
        if label in ("fog", "drizzle", "rain")
    }
    print(
        json.dumps(
            {
                "days": len(frame),
                "derived_share": {
                    k: round(v, 3) for k, v in frame["derived"].value_counts(normalize=True).items()
                },
                "derived_per_year": per_year(frame, "derived"),
                "recorded_per_year": per_year(frame, "weather"),
                "recorded_label_vs_precipitation": recorded_vs_rain,
                "references_next_day_accuracy": {
                    "weather": references("weather"),
                    "weather-labels": references("weather-labels"),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
