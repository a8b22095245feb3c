"""S&P 500: predict the next day's close-to-close return from recent days.

Data: daily OHLCV 1999-2018 (5031 days) from ``arch.data.sp500``, bundled
in the ``arch`` package, offline. One timestep = one trading day: the
observation summarises the last five days (closes, daily returns in percent,
volume); the target is the next day's close-to-close return in percent.
"""

from __future__ import annotations

from typing import Any

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.state import Observation
from llm_as_rnn.tasks.base import RegressionTask

WINDOW = 5
"""Days summarised in each observation."""


class SP500Task(RegressionTask):
    """Next-day S&P 500 return in percent."""

    name = "sp500"
    unit = "percent, e.g. -0.42"
    description = (
        "You forecast the S&P 500 index. Each step gives the last five trading days; "
        "predict the NEXT day's close-to-close return in percent."
    )

    @property
    def question(self) -> str:
        """Ask for tomorrow's return."""
        return "What will the next day's close-to-close return be, in percent?"

    def observations(self, start: int, steps: int) -> list[Observation]:
        """Return ``steps`` consecutive trading days from day ``start``."""
        return sp500_observations(start, steps)


def _frame() -> Any:
    try:
        import arch.data.sp500
    except ImportError:
        raise ConfigError("the S&P 500 data needs arch: pip install 'llm-as-rnn[evals]'") from None
    frame = arch.data.sp500.load()
    frame["return_pct"] = frame["Close"].pct_change() * 100
    return frame


def sp500_days() -> int:
    """Return how many trading days the dataset holds."""
    return len(_frame())


def sp500_observations(start: int, steps: int) -> list[Observation]:
    """Return observations for days ``start .. start+steps-1`` (day 0 = 5th trading day)."""
    frame = _frame()
    first = start + WINDOW  # each observation needs WINDOW days with a return
    last = len(frame) - 1  # the last day has no next-day target
    if start < 0 or steps < 1 or first + steps > last:
        raise ConfigError(
            f"sp500 window start={start} steps={steps} is outside the data: "
            f"need 0 <= start and start + steps <= {last - WINDOW}"
        )
    observations = []
    for day in range(first, first + steps):
        window = frame.iloc[day - WINDOW + 1 : day + 1]
        rows = [
            f"{date:%Y-%m-%d}: close {row.Close:.2f}, return {row.return_pct:+.3f}%, "
            f"volume {row.Volume / 1e6:.0f}M"
            for date, row in window.iterrows()
        ]
        returns = window["return_pct"]
        text = "\n".join(rows) + (
            f"\n5-day mean return {returns.mean():+.3f}%, 5-day volatility {returns.std():.3f}%"
        )
        target = round(float(frame["return_pct"].iloc[day + 1]), 4)
        date = frame.index[day]
        observations.append(Observation(input=text, target=target, id=f"{date:%Y-%m-%d}"))
    return observations
