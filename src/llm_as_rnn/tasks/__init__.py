"""Tasks: what is predicted at each step, how it is asked, parsed and scored.

Built-in tasks are ``weather``, ``weather-labels``, ``sp500`` and ``mimic``. Other packages add
tasks through the entry point group ``llm_as_rnn.tasks`` (the ecosystem's
plugin convention); each entry point names a ``Task`` subclass (or a callable
returning a task)::

    [project.entry-points."llm_as_rnn.tasks"]
    helpdesk = "my_package.tasks:HelpdeskTask"

after which ``get_task("helpdesk")``, ``llm-as-rnn run --task helpdesk`` and
Studio's context ``{"task": "helpdesk"}`` all reach it. The environment variable
``LLM_AS_RNN_PLUGINS`` limits which installed plugins are used: ``off`` for none
(only built-in tasks, as the test suite runs), or a comma-separated list of names.
"""

from __future__ import annotations

import functools
import os
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


PLUGINS_VARIABLE = "LLM_AS_RNN_PLUGINS"
"""The environment variable limiting the task plugins used: ``off`` for none, or the
comma-separated names of those to use; unset, every installed one."""


@functools.cache
def installed() -> dict[str, EntryPoint]:
    """Return every installed task entry point by name.

    Read once per process: a package installed later is found by the next process.
    """
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def plugins() -> dict[str, EntryPoint]:
    """Return the task entry points in use by name.

    Built-in names win; ``LLM_AS_RNN_PLUGINS`` (``PLUGINS_VARIABLE``) limits the rest.
    """
    found = {name: ep for name, ep in installed().items() if name not in TASKS}
    chosen = os.environ.get(PLUGINS_VARIABLE)
    if chosen is None:
        return found
    wanted = set() if chosen.strip().lower() == "off" else {n.strip() for n in chosen.split(",")}
    return {name: ep for name, ep in found.items() if name in wanted}


def task_names() -> list[str]:
    """Return the names of every task that ``get_task`` finds (built in and plugins)."""
    return sorted({*TASKS, *plugins()})


def get_task(name: str | Task) -> Task:
    """Return the task called ``name``; ``ConfigError`` listing the known ones if none.

    A task instance is returned as it is.
    """
    if isinstance(name, Task):
        return name
    if not isinstance(name, str):
        raise ConfigError(
            f"task {name!r:.60} is not a task name: give a name ({', '.join(task_names())}) "
            "or a Task instance"
        )
    if name not in TASKS and name not in plugins():
        chosen = os.environ.get(PLUGINS_VARIABLE)
        limit = f" ({PLUGINS_VARIABLE}={chosen} limits the plugins)" if chosen is not None else ""
        raise ConfigError(f"unknown task {name!r}: choose one of {', '.join(task_names())}{limit}")
    return named(name)


@functools.cache
def named(name: str) -> Task:
    """Return the known task called ``name``, built once per process (tasks hold no state)."""
    return TASKS[name]() if name in TASKS else load_plugin(installed()[name])


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
    "PLUGINS_VARIABLE",
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
