"""Weather: predict tomorrow's weather in Seattle from today's measurements.

Data: Seattle daily weather 2012-2015 (1461 days) from ``vega_datasets``,
bundled in the package, offline. One timestep = one day: the observation is
the day's date, precipitation, temperatures, wind and observed weather; the
target is the next day's weather label.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.state import Observation
from llm_as_rnn.tasks.base import ClassificationTask


class WeatherTask(ClassificationTask):
    """Next-day weather label in Seattle."""

    name = "weather"
    labels = ("sun", "rain", "fog", "drizzle", "snow")
    synonyms: ClassVar[dict[str, str]] = {
        "sunny": "sun",
        "clear": "sun",
        "sunshine": "sun",
        "rainy": "rain",
        "raining": "rain",
        "rains": "rain",
        "showers": "rain",
        "foggy": "fog",
        "mist": "fog",
        "misty": "fog",
        "drizzly": "drizzle",
        "drizzling": "drizzle",
        "snowy": "snow",
        "snowing": "snow",
        "snowfall": "snow",
    }
    description = (
        "You forecast the weather in Seattle. Each step gives one day's measurements "
        "and observed weather; predict the NEXT day's weather label."
    )

    @property
    def question(self) -> str:
        """Ask for tomorrow's label."""
        return "What will tomorrow's weather be: sun, rain, fog, drizzle or snow?"

    def observations(self, start: int, steps: int) -> list[Observation]:
        """Return ``steps`` consecutive days from day ``start``."""
        return weather_observations(start, steps)


_FIELDS = {
    "precipitation": "precipitation (mm)",
    "temp_max": "max temperature (C)",
    "temp_min": "min temperature (C)",
    "wind": "wind (m/s)",
    "weather": "observed weather",
}


def _frame() -> Any:
    try:
        from vega_datasets import local_data
    except ImportError:
        raise ConfigError(
            "the weather data needs vega_datasets: pip install 'llm-as-rnn[evals]'"
        ) from None
    return local_data.seattle_weather()


def weather_days() -> int:
    """Return how many days the dataset holds."""
    return len(_frame())


def weather_observations(start: int, steps: int) -> list[Observation]:
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
        values |= {label: today[key] for key, label in _FIELDS.items()}
        observations.append(
            Observation(input=values, target=str(tomorrow["weather"]), id=f"{date:%Y-%m-%d}")
        )
    return observations
