"""Any label set parses: several words, hyphens, numbers, accents, emoji (pure, no model)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llm_as_rnn.tasks import ClassificationTask
from llm_as_rnn.tasks.labels import normalize
from tests.conftest import task_class

WORDS = st.sampled_from(
    ["rain", "heavy", "no", "sun", "sunny", "2", "1.0", "class_2", "été", "☀️", "fog", "up", "x"]
)
LABEL = st.lists(WORDS, min_size=1, max_size=3).map(" ".join) | st.builds(
    lambda a, b: f"{a}-{b}", WORDS, WORDS
)


def task_of(labels: tuple[str, ...]) -> ClassificationTask:
    task: ClassificationTask = task_class("Labels", name="labels", description="d", labels=labels)()
    return task


REAL = ("heavy rain", "no-rain", "☀️ sunny", "2", "1.0", "class_2", "été", "rain")


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("Answer: ☀️ sunny", "☀️ sunny"),
        ("Answer: ☀ Sunny", "☀️ sunny"),
        ("answer is **No-Rain**.", "no-rain"),
        ("Answer: heavy rain", "heavy rain"),
        ("Answer: rain", "rain"),
        ("Answer: 2", "2"),
        ("Answer: 1.0", "1.0"),
        ("ÉTÉ", "été"),
        ("Prediction: I expect heavy rain tomorrow.", "heavy rain"),
        ("Answer: CLASS_2", "class_2"),
    ],
)
def test_real_labels_parse(reply: str, label: str) -> None:
    assert task_of(REAL).parse(reply) == label


@pytest.mark.parametrize(
    "reply", ["Answer: 2.5", "rainbow", "rain or heavy rain", "1.05", "Answer: class_22", ""]
)
def test_non_answers_do_not_parse(reply: str) -> None:
    assert task_of(REAL).parse(reply) is None


def test_targets_are_read_the_same_way() -> None:
    task = task_of(REAL)
    assert task.validate_target("Heavy  Rain") == "heavy rain"
    assert task.validate_target("☀ sunny") == "☀️ sunny"
    assert task.score("2", 2).correct is True
    with pytest.raises(ValueError, match="not one of"):
        task.validate_target("drizzle")


@settings(max_examples=300, deadline=None)
@given(st.lists(LABEL, min_size=1, max_size=6), st.data())
def test_any_label_set_reads_each_label_and_no_other(
    labels: list[str], data: st.DataObject
) -> None:
    distinct = tuple(dict.fromkeys(normalize(label) for label in labels))
    task = task_of(distinct)
    label = data.draw(st.sampled_from(distinct))
    shown = data.draw(st.sampled_from([label, label.upper(), f"**{label}**"]))
    assert task.parse(f"Answer: {shown}") == label
    assert task.parse(shown) == label
    assert task.parse(f"Reasoning first.\nAnswer: {shown}\n") == label


@settings(max_examples=200, deadline=None)
@given(st.lists(LABEL, min_size=2, max_size=6, unique_by=normalize), st.data())
def test_a_reply_naming_two_labels_without_a_marker_is_not_read(
    labels: list[str], data: st.DataObject
) -> None:
    distinct = tuple(normalize(label) for label in labels)
    first, second = data.draw(st.permutations(distinct))[:2]
    assume(first not in second and second not in first)  # else the longer one is named
    assert task_of(distinct).parse(f"{first} or {second}") is None
