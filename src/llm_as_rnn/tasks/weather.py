"""Weather: predict tomorrow's weather in Seattle from today's measurements.

One timestep = one day: the observation is the day's date, precipitation,
temperatures, wind and observed weather; the target is the next day's weather
label. The bundled data (``llm_as_rnn.data.weather``) is Seattle 2012-2015.
"""

from __future__ import annotations

from typing import ClassVar

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
