"""The weather tasks: data windows under both label schemes, answer parsing, scoring."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_as_rnn.data import weather
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks import get_task
from llm_as_rnn.tasks import weather as weather_task

TASK = get_task("weather-labels")
DERIVED = get_task("weather")


def test_observations_are_real_consecutive_days() -> None:
    obs = weather.window(0, 3, "recorded")
    assert [o["id"] for o in obs] == ["2012-01-01", "2012-01-02", "2012-01-03"]
    # the target of day t is the observed weather of day t+1
    assert obs[0]["target"] == obs[1]["input"]["observed weather"] == "rain"
    assert obs[0]["input"]["precipitation (mm)"] == 0.0
    assert weather.days() == 1461


def test_derived_labels_follow_the_precipitation() -> None:
    # 2012-01-01..04 measured 0.0, 10.9, 0.8 and 20.3 mm (vega_datasets seattle-weather)
    obs = weather.window(0, 3)
    assert [o["input"]["today's class"] for o in obs] == ["dry", "heavy rain", "light rain"]
    assert [o["target"] for o in obs] == ["heavy rain", "light rain", "heavy rain"]
    assert "observed weather" not in obs[0]["input"]  # the drifting label stays out
    assert [weather_task.precipitation_class(mm) for mm in (0.0, 0.1, 4.9, 5.0)] == [
        "dry",
        "light rain",
        "light rain",
        "heavy rain",
    ]


def test_truth_free_inputs_hide_the_lagged_truth() -> None:
    day = weather.window(0, 1)[0]["input"]
    hidden = DERIVED.truth_free_input(day)
    assert "today's class" not in hidden
    assert "precipitation (mm)" not in hidden
    assert hidden["max temperature (C)"] == 12.8
    with pytest.raises(ConfigError, match="cannot hide lagged truth"):
        get_task("sp500").truth_free_input("2012-01-03: close 1, return +0.1%")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Answer: heavy rain", "heavy rain"),
        ("Answer: light rain, not heavy rain", "light rain"),
        ("answer: **Dry**", "dry"),
        ("I expect a downpour tomorrow.", "heavy rain"),
        ("dry, light rain or heavy rain", None),
        ("Answer: rain", None),  # which rain? not a label of this scheme
    ],
)
def test_parse_derived(text: str, label: str | None) -> None:
    assert DERIVED.parse(text) == label


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
    assert DERIVED.score("light rain", "Light Rain").correct is True
    assert TASK.score("sun", None).correct is None
    with pytest.raises(ValueError, match="not one of"):
        TASK.validate_target("hail")


def test_initial_memory_has_every_section() -> None:
    h0 = TASK.initial_memory()
    for name in TASK.sections:
        assert f"## {name}" in h0.splitlines()


@pytest.mark.registry
def test_unknown_task() -> None:
    with pytest.raises(ConfigError, match="unknown task 'nope': choose one of"):
        get_task("nope")
