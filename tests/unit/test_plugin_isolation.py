"""The suite sees only built-in tasks: an installed task plugin changes no test's result."""

from __future__ import annotations

import re
import subprocess
import sys

from llm_as_rnn.tasks import PLUGINS_VARIABLE
from tests.conftest import ROOT, plugin_env


def as_installed() -> dict[str, str]:
    """Return an environment with the fixture plugin installed, as a user's shell has it."""
    env = plugin_env()
    del env[PLUGINS_VARIABLE]  # the user never set it
    return env


def python(code: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_fixture_folder_installs_the_plugin() -> None:
    code = "from llm_as_rnn.tasks import task_names; print(task_names())"
    assert "'helpdesk'" in python(code, as_installed())


def test_the_plugins_variable_chooses_the_plugins() -> None:
    code = (
        "import os\n"
        "from llm_as_rnn import ConfigError, get_task\n"
        "from llm_as_rnn.tasks import PLUGINS_VARIABLE, plugins\n"
        "for chosen in [' OFF', 'helpdesk', ' helpdesk, broken ', '']:\n"
        "    os.environ[PLUGINS_VARIABLE] = chosen\n"
        "    print(repr(chosen), sorted(plugins()))\n"
        "os.environ[PLUGINS_VARIABLE] = 'off'\n"
        "try:\n"
        "    get_task('helpdesk')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    assert python(code, as_installed()).splitlines() == [
        "' OFF' []",
        "'helpdesk' ['helpdesk']",
        "' helpdesk, broken ' ['broken', 'helpdesk']",
        "'' []",
        "unknown task 'helpdesk': choose one of mimic, sp500, weather, weather-labels "
        f"({PLUGINS_VARIABLE}=off limits the plugins)",
    ]


def test_the_tests_that_list_tasks_pass_with_a_plugin_installed() -> None:
    """Re-run every test marked ``registry`` where a plugin is installed."""
    pytest_args = ["-q", "-p", "no:cacheprovider", "-m", "registry", "tests/unit"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args],
        capture_output=True,
        text=True,
        env=as_installed(),
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    passed = re.search(r"(\d+) passed", out.stdout)
    assert passed, out.stdout[-3000:]
    assert int(passed.group(1)) >= 5, out.stdout[-3000:]
