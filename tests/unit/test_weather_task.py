"""The weather task: data window, answer parsing, scoring."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_as_rnn.data import weather
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks import get_task

TASK = get_task("weather")


def test_observations_are_real_consecutive_days() -> None:
    obs = weather.window(0, 3)
    assert [o["id"] for o in obs] == ["2012-01-01", "2012-01-02", "2012-01-03"]
    # the target of day t is the observed weather of day t+1
    assert obs[0]["target"] == obs[1]["input"]["observed weather"] == "rain"
    assert obs[0]["input"]["precipitation (mm)"] == 0.0
    assert weather.days() == 1461


def test_window_outside_data_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="outside the data"):
        weather.window(1459, 5)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Answer: rain", "rain"),
        ("answer:  **Sunny**", "sun"),
        ("The answer is fog.", "fog"),
        ("I think it will be drizzly tomorrow.", "drizzle"),
        ("Prediction - SNOW", "snow"),
        ("Answer: the weather will be clear", "sun"),
        ("sunny, rain, fog or snow", None),  # lists the options: ambiguous
        ("No idea.", None),
        ("", None),
    ],
)
def test_parse(text: str, label: str | None) -> None:
    assert TASK.parse(text) == label


@given(st.text(max_size=500))
def test_parse_never_crashes(text: str) -> None:
    assert TASK.parse(text) in {None, *TASK.labels}  # type: ignore[attr-defined]


def test_score() -> None:
    assert TASK.score("rain", "rain").correct is True
    assert TASK.score("rain", "Sun").correct is False
    assert TASK.score(None, "sun").error == 1.0
    assert TASK.score("sun", None).correct is None
    with pytest.raises(ValueError, match="not one of"):
        TASK.validate_target("hail")


def test_initial_memory_has_every_section() -> None:
    h0 = TASK.initial_memory()
    for name in TASK.sections:
        assert f"## {name}" in h0.splitlines()


def test_unknown_task() -> None:
    with pytest.raises(ConfigError, match="unknown task 'nope': choose one of"):
        get_task("nope")
