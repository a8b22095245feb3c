"""S&P 500: predict the next day's close-to-close return from recent days.

One timestep = one trading day: the observation summarises the last five
days (closes, daily returns in percent, volume); the target is the next day's
close-to-close return in percent. The bundled data
(``llm_as_rnn.data.sp500``) is daily OHLCV 1999-2018.
"""

from __future__ import annotations

import re
from typing import Any

from llm_as_rnn.tasks.base import RegressionTask

_RETURN = re.compile(r"close \S+, return ([^%\s]+%)")


class SP500Task(RegressionTask):
    """Next-day S&P 500 return in percent."""

    name = "sp500"
    unit = "percent, e.g. -0.42"
    percent = True
    description = (
        "You forecast the S&P 500 index. Each step gives the last five trading days; "
        "predict the NEXT day's close-to-close return in percent."
    )

    @property
    def question(self) -> str:
        """Ask for tomorrow's return."""
        return "What will the next day's close-to-close return be, in percent?"

    def last_observed(self, value: Any) -> float | None:
        """The newest daily return shown in the input (the previous step's truth)."""
        found = _RETURN.findall(value) if isinstance(value, str) else []
        try:
            return self.validate_target(found[-1]) if found else None
        except ValueError:  # a user's file may show something else there
            return None
