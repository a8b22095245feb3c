"""Tasks of a user's own file: classification over its labels, or regression.

Used by ``--data FILE --task-type ...`` (the file is read by
``llm_as_rnn.data.files``); name a task of your own with ``--task`` instead
when its prompts should say more.
"""

from __future__ import annotations

from typing import ClassVar

from llm_as_rnn.tasks.base import ClassificationTask, RegressionTask
from llm_as_rnn.tasks.labels import normalize


class GenericClassification(ClassificationTask):
    """Classification over a user's label set."""

    name = "generic"
    description = (
        "You predict the outcome of each step of a sequence from its input; "
        "learn from your memory of earlier steps."
    )
    synonyms: ClassVar[dict[str, str]] = {}

    def __init__(self, labels: tuple[str, ...], name: str = "generic") -> None:
        self.labels = tuple(dict.fromkeys(normalize(label) for label in labels))  # type: ignore[misc]
        self.name = name  # type: ignore[misc]


class GenericRegression(RegressionTask):
    """Regression on a user's numeric targets."""

    name = "generic"
    description = (
        "You predict a number for each step of a sequence from its input; "
        "learn from your memory of earlier steps."
    )

    def __init__(self, name: str = "generic") -> None:
        self.name = name  # type: ignore[misc]
