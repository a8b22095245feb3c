"""Sequences to run: the bundled datasets, MIMIC-IV, and users' own files.

Tasks say how a step is shown, parsed and scored; this package says where
the steps come from. ``BUNDLED`` maps a task name to its offline dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llm_as_rnn.core.state import Observation
from llm_as_rnn.data import sp500, weather
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks import Task


@dataclass(frozen=True)
class Bundled:
    """An offline dataset of consecutive steps."""

    starts: Callable[[], int]
    """How many steps the data holds that can start a window (each needs its target)."""
    window: Callable[[int, int], list[Observation]]
    """``window(start, steps)``: ``steps`` consecutive observations from ``start``."""


BUNDLED: dict[str, Bundled] = {
    "weather": Bundled(lambda: weather.days() - 1, weather.window),
    "weather-labels": Bundled(
        lambda: weather.days() - 1, lambda start, steps: weather.window(start, steps, "recorded")
    ),
    "sp500": Bundled(lambda: sp500.days() - sp500.WINDOW - 1, sp500.window),
}


def bundled(task: str) -> Bundled:
    """Return the bundled dataset of ``task``, or a ``ConfigError`` saying what to do."""
    try:
        return BUNDLED[task]
    except KeyError:
        raise ConfigError(
            f"task {task!r} has no bundled data: give your own sequences with --data FILE "
            f"(bundled: {', '.join(sorted(BUNDLED))})"
        ) from None


def bundled_window(task: str, start: int, steps: int) -> list[Observation]:
    """Return ``steps`` consecutive observations of ``task``'s bundled data from ``start``."""
    return bundled(task).window(start, steps)


def without_lagged_truth(task: Task, observations: list[Observation]) -> list[Observation]:
    """Return observations whose inputs hide earlier steps' truth (``Task.truth_free_input``)."""
    return [Observation(**{**o, "input": task.truth_free_input(o["input"])}) for o in observations]


__all__ = ["BUNDLED", "Bundled", "bundled", "bundled_window", "without_lagged_truth"]
