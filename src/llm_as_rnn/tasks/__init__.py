"""Tasks: one module per task, looked up by name."""

from __future__ import annotations

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks.base import ClassificationTask, RegressionTask, Score, Task
from llm_as_rnn.tasks.mimic import MimicTask
from llm_as_rnn.tasks.sp500 import SP500Task
from llm_as_rnn.tasks.weather import WeatherTask

TASKS: dict[str, type[Task]] = {"weather": WeatherTask, "sp500": SP500Task, "mimic": MimicTask}


def get_task(name: str | Task) -> Task:
    """Return the task called ``name`` or raise ``ConfigError`` listing the known ones.

    A task instance is returned as it is.
    """
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}"
        ) from None


__all__ = ["TASKS", "ClassificationTask", "RegressionTask", "Score", "Task", "get_task"]
