"""Tasks: what is predicted at each step, how it is asked, parsed and scored.

Built-in tasks are ``weather``, ``weather-labels``, ``sp500`` and ``mimic``. Other packages add
tasks through the entry point group ``llm_as_rnn.tasks`` (the ecosystem's
plugin convention); each entry point names a ``Task`` subclass (or a callable
returning a task)::

    [project.entry-points."llm_as_rnn.tasks"]
    helpdesk = "my_package.tasks:HelpdeskTask"

after which ``get_task("helpdesk")``, ``llm-as-rnn run --task helpdesk`` and
Studio's context ``{"task": "helpdesk"}`` all reach it.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from llm_as_rnn.errors import ConfigError, describe, first_line
from llm_as_rnn.tasks.base import ClassificationTask, RegressionTask, Score, Task
from llm_as_rnn.tasks.mimic import MimicTask
from llm_as_rnn.tasks.sp500 import SP500Task
from llm_as_rnn.tasks.weather import WeatherLabelsTask, WeatherTask

ENTRY_POINT_GROUP = "llm_as_rnn.tasks"
"""The entry point group where other packages register tasks by name."""

TASKS: dict[str, type[Task]] = {
    "weather": WeatherTask,
    "weather-labels": WeatherLabelsTask,
    "sp500": SP500Task,
    "mimic": MimicTask,
}
"""The built-in tasks."""


@functools.cache
def plugins() -> dict[str, EntryPoint]:
    """Return the installed task entry points by name (built-in names win).

    Read once per process: a package installed later is found by the next process.
    """
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {name: ep for name, ep in found.items() if name not in TASKS}


def task_names() -> list[str]:
    """Return the names of every task that ``get_task`` finds (built in and plugins)."""
    return sorted({*TASKS, *plugins()})


def get_task(name: str | Task) -> Task:
    """Return the task called ``name``; ``ConfigError`` listing the known ones if none.

    A task instance is returned as it is.
    """
    if isinstance(name, Task):
        return name
    return named(name)


@functools.cache
def named(name: str) -> Task:
    """Return the task called ``name``, built once per process (tasks hold no state)."""
    if name in TASKS:
        return TASKS[name]()
    entry = plugins().get(name)
    if entry is None:
        raise ConfigError(f"unknown task {name!r}: choose one of {', '.join(task_names())}")
    return load_plugin(entry)


def load_plugin(entry: EntryPoint) -> Task:
    """Load a task entry point: a ``Task`` subclass, a task, or a callable returning one."""
    where = f"task {entry.name!r} ({entry.value}, entry point group {ENTRY_POINT_GROUP})"
    try:
        target = entry.load()
    except Exception as exc:  # any import error of a third-party package
        raise ConfigError(f"{where} cannot be loaded: {first_line(exc)}") from None
    if isinstance(target, Task):
        return target
    try:
        task = target() if callable(target) else target
    except ConfigError:
        raise  # the task's own check: it names what to fix
    except Exception as exc:  # a bug in the plugin's constructor
        raise ConfigError(f"{where} failed to build: {describe(exc)}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"{where} is not a Task: it gave {type(task).__name__}")
    return task


__all__ = [
    "ENTRY_POINT_GROUP",
    "TASKS",
    "ClassificationTask",
    "RegressionTask",
    "Score",
    "Task",
    "get_task",
    "load_plugin",
    "plugins",
    "task_names",
]
