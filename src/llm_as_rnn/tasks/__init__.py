"""Tasks: one module per task, looked up by name."""

from __future__ import annotations

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks.base import ClassificationTask, Score, Task
from llm_as_rnn.tasks.weather import WeatherTask

TASKS: dict[str, type[Task]] = {"weather": WeatherTask}


def get_task(name: str) -> Task:
    """Return the task called ``name`` or raise ``ConfigError`` listing the known ones."""
    try:
        return TASKS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}"
        ) from None


__all__ = ["TASKS", "ClassificationTask", "Score", "Task", "get_task"]
