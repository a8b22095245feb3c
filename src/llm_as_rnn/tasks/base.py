"""The task interface: how a timestep is shown, answered, parsed and scored."""

from __future__ import annotations

import functools
import json
import unicodedata
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from llm_as_rnn.errors import ConfigError, DataError
from llm_as_rnn.runtime.structure import LINE_BREAKS
from llm_as_rnn.tasks.labels import normalize, read_label
from llm_as_rnn.tasks.markdown import title_problem
from llm_as_rnn.tasks.numbers import number, quoted, read_number


@dataclass(frozen=True)
class Score:
    """The score of one answer against its target."""

    correct: bool | None
    """Right or wrong (None when there is no target to compare with)."""
    error: float | None
    """0/1 for classification, absolute error for regression."""


def one_line(where: str, attribute: str, value: Any) -> None:
    """Refuse (``ConfigError`` naming the attribute) a value that is not a one-line name.

    A name, label, section title or field name is non-blank text with no
    control character and no line break (a newline would break the prompt line it goes in) and
    no surrounding spaces (it is matched and written as it is).
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {attribute} {value!r} must be non-empty text")
    if value != value.strip() or any(
        unicodedata.category(ch) == "Cc" or ch in LINE_BREAKS for ch in value
    ):
        raise ConfigError(
            f"{where}: {attribute} {value!r} must be one line without surrounding spaces"
        )


class TaskMeta(ABCMeta):
    """Checks every task right after it is constructed (``Task.check``)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        """Construct the task, then check it."""
        task = super().__call__(*args, **kwargs)
        task.check()
        return task


class Task(metaclass=TaskMeta):
    """A sequence prediction task.

    Subclasses define what to predict (``name``, ``description``), the
    memory's sections and initial text, and pure functions to render inputs
    and to parse and score answers. A task is checked when it is constructed:
    a missing or empty attribute is a ``ConfigError`` naming it.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["classification", "regression"]]
    sections: ClassVar[tuple[str, ...]] = ("PATTERNS", "RECENT ERRORS", "RULES OF THUMB")
    description: ClassVar[str]
    """What is predicted, in a sentence or two (goes to the system prompt)."""
    lagged_truth: ClassVar[tuple[str, ...]] = ()
    """Fields of a mapping input that reveal an earlier step's truth (today's
    weather is yesterday's target); ``truth_free_input`` drops them."""

    def check(self) -> None:
        """Raise ``ConfigError`` naming what is missing or wrong in this task's definition."""
        where = f"task class {type(self).__name__}"
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f'{where}: set name = "..." (the name runs and traces use)')
        one_line(where, "name", name)
        description = getattr(self, "description", None)
        if not isinstance(description, str) or not description.strip():
            raise ConfigError(
                f'{where}: set description = "..." (what is predicted, for the system prompt)'
            )
        if getattr(self, "kind", None) not in ("classification", "regression"):
            raise ConfigError(f"{where}: derive from ClassificationTask or RegressionTask")
        sections = getattr(self, "sections", ())
        if not isinstance(sections, tuple) or not sections:
            raise ConfigError(f'{where}: sections must be a tuple of titles ("PATTERNS", ...)')
        for title in sections:
            one_line(where, "sections", title)
        if len({s.upper() for s in sections}) != len(sections):  # headers match any case
            raise ConfigError(f"{where}: sections {sections!r} repeat a title")
        for title in sections:  # every title a memory is written with must read back
            if problem := title_problem(title, sections):
                raise ConfigError(f"{where}: sections title {title!r} {problem}")
        fields = getattr(self, "lagged_truth", ())
        if not isinstance(fields, tuple):
            raise ConfigError(f'{where}: lagged_truth must be a tuple of field names ("...",)')
        for field in fields:
            one_line(where, "lagged_truth", field)

    @property
    @abstractmethod
    def answer_format(self) -> str:
        """Describe the exact answer line expected from the predictor."""

    @property
    @abstractmethod
    def question(self) -> str:
        """The question put to the predictor at each step."""

    def initial_memory(self) -> str:
        """Return h_0: every section with a 'nothing learned yet' line."""
        empty = {
            "PATTERNS": "- No observations yet.",
            "RECENT ERRORS": "- None yet.",
            "RULES OF THUMB": "- None yet.",
        }
        return "\n\n".join(f"## {s}\n{empty.get(s, '- Nothing yet.')}" for s in self.sections)

    def render_input(self, value: Any) -> str:
        """Render an observation's input as text (mappings become key: value lines)."""
        if isinstance(value, Mapping):
            return "\n".join(f"{k}: {v}" for k, v in value.items())
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def last_observed(self, value: Any) -> Any:
        """Return the newest value of the predicted series shown in an input, if any.

        The reference methods use it (``persistence`` repeats it); None when the
        input shows none, and they fall back to the previous step's truth.
        """
        return None

    def truth_free_input(self, value: Any) -> Any:
        """Return an input without its ``lagged_truth`` fields (judge mode, truly truth-free).

        Raises ``ConfigError`` when the task declares no such fields.
        """
        if not self.lagged_truth or not isinstance(value, Mapping):
            raise ConfigError(
                f"task {self.name!r} cannot hide lagged truth: it declares no lagged_truth "
                "input fields (drop the truth-free option)"
            )
        return {k: v for k, v in value.items() if k not in self.lagged_truth}

    def render_target(self, target: Any) -> str:
        """Render a target as text."""
        return str(target)

    @abstractmethod
    def parse(self, text: str) -> Any:
        """Read the answer from free model text; None when there is none."""

    @abstractmethod
    def score(self, answer: Any, target: Any) -> Score:
        """Score a parsed answer (possibly None) against a target."""

    @abstractmethod
    def validate_target(self, target: Any) -> Any:
        """Return the target in canonical form, or raise ``DataError`` saying what is expected.

        Every path checks targets with it before any model call (``OnlineLearner.learn``,
        ``run_sequence``, the graph's nodes), so a bad target never reaches a step.
        """

    def outcome(self, score: Score) -> str:
        """Describe a score in words for the critic (``CORRECT`` / ``WRONG``)."""
        return "CORRECT" if score.correct else "WRONG"


class ClassificationTask(Task):
    """A task whose answer is one label of a fixed set.

    Labels are matched case-insensitively and normalised (``labels.normalize``):
    answers, targets, labels and synonyms are compared after Unicode NFKC
    normalisation, lower-casing, collapsing white space and dropping the emoji
    variation selector, so ``"Escalate "`` is the label ``escalate``. A reply's
    label is matched whole, the longest first (``labels.read_label``).
    """

    kind = "classification"
    labels: ClassVar[tuple[str, ...]]
    """The answers it may give: lower-case, distinct after normalisation."""
    synonyms: ClassVar[dict[str, str]] = {}
    """Extra words mapped to a label (``"sunny": "sun"``)."""

    def check(self) -> None:
        """Also require a non-empty set of distinct, lower-case labels."""
        super().check()
        labels = getattr(self, "labels", None)
        where = f"task class {type(self).__name__}"
        if not isinstance(labels, tuple) or not labels:
            raise ConfigError(f'{where}: set labels = ("...", ...) (the answers it may give)')
        for label in labels:
            one_line(where, "labels", label)
        if any(label != label.lower() for label in labels):
            raise ConfigError(f"{where}: labels {labels!r} must be lower-case")
        if len({normalize(label) for label in labels}) != len(labels):
            raise ConfigError(f"{where}: labels {labels!r} repeat a label")
        synonyms = getattr(self, "synonyms", {})
        if not isinstance(synonyms, Mapping):
            raise ConfigError(f"{where}: synonyms must be a dict of word -> label")
        for word, label in synonyms.items():
            one_line(where, "synonyms", word)
            if label not in labels:
                raise ConfigError(
                    f"{where}: synonyms maps {word!r} to {label!r}, not a label: "
                    f"map each word to one of {', '.join(labels)}"
                )

    @property
    def answer_format(self) -> str:
        """Ask for one label on an ``Answer:`` line."""
        return f"Answer: <one of {', '.join(self.labels)}>"

    @functools.cached_property
    def names(self) -> dict[str, str]:
        """Every name a reply may use (labels and synonyms, normalised) -> its label."""
        names = {normalize(word): label for word, label in self.synonyms.items()}
        return names | {normalize(label): label for label in self.labels}

    @property
    def question(self) -> str:
        """Ask for the label in plain words."""
        return f"Which will it be: {', '.join(self.labels)}?"

    def parse(self, text: str) -> str | None:
        """Return the label after an answer marker, else the only label named.

        Any label set: several words, numbers, accents, emoji; longest label
        first; a reply naming several labels without a marker (small models
        list the options back) is ambiguous and parses to None.
        """
        return read_label(text, self.names)

    def score(self, answer: Any, target: Any) -> Score:
        """Exact label match; an unreadable answer counts as wrong."""
        if target is None:
            return Score(None, None)
        correct = answer is not None and answer == self.validate_target(target)
        return Score(correct, 0.0 if correct else 1.0)

    def validate_target(self, target: Any) -> str:
        """Accept a label (or a synonym), case-insensitively and Unicode-normalised."""
        text = isinstance(target, str | int | float) and not isinstance(target, bool)
        label = self.names.get(normalize(str(target))) if text else None
        if label is None:
            raise DataError(
                f"target {quoted(target)} is not one of {', '.join(self.labels)} "
                "(labels match case-insensitively)"
            )
        return label


class RegressionTask(Task):
    """A task whose answer is one number."""

    kind = "regression"
    unit: ClassVar[str] = ""
    """The unit, for the prompts (``"percent, e.g. -0.42"``)."""
    percent: ClassVar[bool] = False
    """Whether the numbers are percent: ``12%`` then reads as 12 (else it is refused as
    ambiguous, 12 or 0.12)."""

    def check(self) -> None:
        """Also require a one-line ``unit`` (or none) and a boolean ``percent``."""
        super().check()
        where = f"task class {type(self).__name__}"
        if self.unit != "":
            one_line(where, "unit", self.unit)
        if not isinstance(self.percent, bool):
            raise ConfigError(f"{where}: percent must be True or False, not {self.percent!r}")

    @property
    def answer_format(self) -> str:
        """Ask for one number on an ``Answer:`` line."""
        return f"Answer: <number{', in ' + self.unit if self.unit else ''}>"

    @property
    def question(self) -> str:
        """Ask for the number in plain words."""
        return "What is your numeric prediction?"

    def parse(self, text: str) -> float | None:
        """Return the number the reply answers with (``numbers.read_number``), else None.

        An unreadable or ambiguous number is None, never some other value.
        """
        return read_number(text, percent=self.percent)

    def score(self, answer: Any, target: Any) -> Score:
        """Absolute error; an unreadable answer has none (never a silent 0 forecast)."""
        if target is None or answer is None:
            return Score(None, None)
        return Score(None, abs(number(answer) - self.validate_target(target)))

    def outcome(self, score: Score) -> str:
        """Describe the absolute error."""
        if score.error is None:
            return "no readable answer to score"
        return f"absolute error {score.error:.3f}"

    def validate_target(self, target: Any) -> float:
        """Accept a number of the grammar (``numbers.number``): finite, within ±1e150."""
        try:
            return number(target, percent=self.percent)
        except ValueError as exc:
            raise DataError(f"target {exc}") from None
