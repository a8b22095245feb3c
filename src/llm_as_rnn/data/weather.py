"""Seattle daily weather 2012-2015 (1461 days) from ``vega_datasets``, offline.

Windows of consecutive days as observations of the weather tasks: the input
is a day's measurements, the target the next day's label. Scheme ``derived``
(task ``weather``): labels are precipitation classes computed from the
measurements, and the input shows today's class; scheme ``recorded`` (task
``weather-labels``): the dataset's own labels, today's shown in the input.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Literal

from llm_as_rnn.core.state import Observation
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks.weather import WeatherLabelsTask, WeatherTask, precipitation_class

_FIELDS = {
    "precipitation": "precipitation (mm)",
    "temp_max": "max temperature (C)",
    "temp_min": "min temperature (C)",
    "wind": "wind (m/s)",
}

Scheme = Literal["derived", "recorded"]


def _frame() -> Any:
    try:
        from vega_datasets import local_data
    except ImportError:
        raise ConfigError(
            "the weather data needs vega_datasets: pip install 'llm-as-rnn[evals]'"
        ) from None
    return local_data.seattle_weather()


def days() -> int:
    """Return how many days the dataset holds."""
    return len(_frame())


def label(row: Mapping[str, Any], scheme: Scheme) -> str:
    """Return a day's label under ``scheme``."""
    if scheme == "derived":
        return precipitation_class(float(row["precipitation"]))
    return str(row["weather"])


def window(start: int, steps: int, scheme: Scheme = "derived") -> list[Observation]:
    """Return ``steps`` consecutive days from day ``start`` as observations.

    Raises ``ConfigError`` when the window leaves the data (the last day has
    no next-day target).
    """
    frame = _frame()
    last = len(frame) - 1  # the last day has no target
    if start < 0 or steps < 1 or start + steps > last:
        raise ConfigError(
            f"weather window start={start} steps={steps} is outside the data: "
            f"need 0 <= start and start + steps <= {last}"
        )
    rows = frame.iloc[start : start + steps + 1].to_dict("records")
    observations = []
    for today, tomorrow in itertools.pairwise(rows):
        date = today["date"]
        values: dict[str, Any] = {"date": f"{date:%Y-%m-%d} ({date:%A})"}
        values |= {name: today[key] for key, name in _FIELDS.items()}
        shown = WeatherTask.today if scheme == "derived" else WeatherLabelsTask.observed
        values[shown] = label(today, scheme)
        observations.append(
            Observation(input=values, target=label(tomorrow, scheme), id=f"{date:%Y-%m-%d}")
        )
    return observations
