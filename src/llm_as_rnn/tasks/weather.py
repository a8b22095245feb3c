"""Weather: predict tomorrow's weather in Seattle from today's measurements.

One timestep = one day. Two label schemes (bundled data: ``llm_as_rnn.data.weather``,
Seattle 2012-2015):

- ``weather`` (the default): the next day's precipitation class, derived from
  the measured precipitation with stated thresholds, ``dry`` (0 mm),
  ``light rain`` (over 0, under 5 mm), ``heavy rain`` (5 mm or more). The
  same rule holds on every day of the four years.
- ``weather-labels``: the dataset's recorded labels (sun, rain, fog, drizzle,
  snow), kept for comparison. They drift: from 2013 on "fog" marks wet days
  and "rain" nearly disappears, so a method can gain by learning the
  recorder's habits rather than the weather (README, "Weather labels").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from llm_as_rnn.tasks.base import ClassificationTask

LIGHT_MM = 0.0
"""Precipitation above this is rain (the data's resolution is 0.1 mm)."""
HEAVY_MM = 5.0
"""Precipitation at or above this is heavy rain (about the wettest fifth of days)."""


def precipitation_class(mm: float) -> str:
    """Return the derived label of a day's precipitation in millimetres."""
    if mm <= LIGHT_MM:
        return "dry"
    return "heavy rain" if mm >= HEAVY_MM else "light rain"


class WeatherTask(ClassificationTask):
    """Next-day precipitation class in Seattle (labels derived from measurements)."""

    name = "weather"
    labels = ("dry", "light rain", "heavy rain")
    synonyms: ClassVar[dict[str, str]] = {
        "no rain": "dry",
        "sun": "dry",
        "sunny": "dry",
        "clear": "dry",
        "drizzle": "light rain",
        "light": "light rain",
        "showers": "light rain",
        "heavy": "heavy rain",
        "downpour": "heavy rain",
    }
    description = (
        "You forecast the weather in Seattle. Each step gives one day's measurements; "
        "predict the NEXT day's precipitation class: dry (0 mm), light rain (more than "
        "0 and under 5 mm) or heavy rain (5 mm or more)."
    )
    today = "today's class"
    """The input field holding today's class (the previous step's truth)."""
    lagged_truth = ("precipitation (mm)", today)

    @property
    def question(self) -> str:
        """Ask for tomorrow's class."""
        return "What will tomorrow be: dry, light rain or heavy rain?"

    def last_observed(self, value: Any) -> Any:
        """Today's class, shown in the input."""
        return value.get(self.today) if isinstance(value, Mapping) else None


class WeatherLabelsTask(ClassificationTask):
    """Next-day recorded weather label in Seattle (the dataset's labels, which drift)."""

    name = "weather-labels"
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
    observed = "observed weather"
    """The input field holding today's recorded label (the previous step's truth)."""
    lagged_truth = (observed,)

    @property
    def question(self) -> str:
        """Ask for tomorrow's label."""
        return "What will tomorrow's weather be: sun, rain, fog, drizzle or snow?"

    def last_observed(self, value: Any) -> Any:
        """Today's recorded label, shown in the input."""
        return value.get(self.observed) if isinstance(value, Mapping) else None
