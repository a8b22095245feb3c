"""Reference rows: methods that make no model call, so a report shows what "good" means.

- ``persistence``: repeat the newest truth visible at the step (today's class
  or the last return shown in the input, else the previous step's target);
- ``prior``: the running majority label (running mean for a number, the most
  frequent codes for MIMIC) of the truths visible so far;
- ``zero`` (regression only): always forecast 0.

Pure functions of a task and a sequence's observations. A step with nothing
visible yet (the first step of a user's file) has no answer: it counts as
invalid, as a model's unreadable answer does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from llm_as_rnn.core.state import Observation
from llm_as_rnn.evals.config import REFERENCES
from llm_as_rnn.evals.records import step_record
from llm_as_rnn.tasks import ClassificationTask, Task


def applies(task: Task, method: str) -> bool:
    """Return whether a reference method applies to a task (``zero`` needs a number)."""
    return method in REFERENCES and (method != "zero" or task.kind == "regression")


def visible_truths(task: Task, observations: Sequence[Observation]) -> list[Any]:
    """Return, per step, the newest truth visible when predicting it (None if none yet)."""
    out: list[Any] = []
    for t, observation in enumerate(observations):
        shown = task.last_observed(observation["input"])
        if shown is None and t > 0:
            previous = task.validate_target(observations[t - 1]["target"])
            shown = previous["code"] if isinstance(previous, dict) else previous
        out.append(shown)
    return out


def _majority(seen: Sequence[Any], k: int) -> list[Any]:
    """Return the ``k`` most frequent values, ties broken by the most recent."""
    counts = Counter(seen)
    last = {value: i for i, value in enumerate(seen)}
    return sorted(counts, key=lambda v: (counts[v], last[v]), reverse=True)[:k]


def answers(task: Task, method: str, observations: Sequence[Observation]) -> list[Any]:
    """Return a reference method's answer at every step (None where it has none)."""
    truths = visible_truths(task, observations)
    ranked_list = task.kind == "classification" and not isinstance(task, ClassificationTask)
    out: list[Any] = []
    for t in range(len(observations)):
        seen = [v for v in truths[: t + 1] if v is not None]
        if method == "zero":
            answer: Any = 0.0
        elif not seen:
            answer = None
        elif method == "persistence":
            answer = [seen[-1]] if ranked_list else seen[-1]
        elif task.kind == "regression":
            answer = sum(float(v) for v in seen) / len(seen)
        else:
            top = _majority(seen, 5)
            answer = top if ranked_list else top[0]
        out.append(answer)
    return out


def reference_records(
    task: Task, method: str, sequence: str, observations: Sequence[Observation]
) -> list[dict[str, Any]]:
    """Return the ``steps.jsonl`` lines of a reference method on one sequence."""
    records = []
    for t, (observation, answer) in enumerate(
        zip(observations, answers(task, method, observations), strict=True)
    ):
        text = task.render_input(observation["input"])
        target = task.validate_target(observation["target"])
        shown = task.render_target(answer) if answer is not None else "(nothing visible yet)"
        records.append(
            step_record(
                task,
                method,
                sequence,
                t + 1,
                observation.get("id"),
                text,
                target,
                (answer, f"{method}: {shown}"),
                {},
            )
        )
    return records
