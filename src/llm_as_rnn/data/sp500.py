"""S&P 500 daily OHLCV 1999-2018 (5031 days) from ``arch.data.sp500``, offline.

Windows of trading days as observations of the ``sp500`` task: the input
summarises the last five days, the target is the next day's return in percent.
"""

from __future__ import annotations

from typing import Any

from llm_as_rnn.core.state import Observation
from llm_as_rnn.errors import ConfigError

WINDOW = 5
"""Days summarised in each observation."""


def _frame() -> Any:
    try:
        import arch.data.sp500
    except ImportError:
        raise ConfigError("the S&P 500 data needs arch: pip install 'llm-as-rnn[evals]'") from None
    frame = arch.data.sp500.load()
    frame["return_pct"] = frame["Close"].pct_change() * 100
    return frame


def days() -> int:
    """Return how many trading days the dataset holds."""
    return len(_frame())


def window(start: int, steps: int) -> list[Observation]:
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
