"""Evaluation datasets: deterministic, seeded sequences of length L per task.

- weather, sp500: bundled real data; sequences are non-overlapping windows of
  L consecutive days, N of them drawn by a seeded shuffle, in time order;
- mimic: the user's MIMIC-IV directory (``--mimic-dir``), N patients with at
  least L admissions (seeded), the first L admissions of each;
- a user's CSV/JSONL (``--data``): the first N sequences by id, each cut to L.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.state import Observation
from llm_as_rnn.tasks import Task, get_task


@dataclass(frozen=True)
class EvalSequence:
    """One sequence of an evaluation."""

    id: str
    observations: list[Observation]


@dataclass(frozen=True)
class EvalData:
    """A task and its sequences."""

    task: Task
    sequences: list[EvalSequence]


def window_starts(usable: int, sequences: int, length: int, seed: int) -> list[int]:
    """Pick ``sequences`` non-overlapping window starts in ``[0, usable)`` (seeded, sorted)."""
    candidates = list(range(0, usable - length + 1, length))
    if len(candidates) < sequences:
        raise ConfigError(
            f"{sequences} sequences of {length} steps do not fit in {usable} days: "
            "lower --sequences or --steps"
        )
    random.Random(seed).shuffle(candidates)
    return sorted(candidates[:sequences])


def bundled(name: str, sequences: int, length: int, seed: int) -> EvalData:
    """Return windows of a task with bundled data (weather, sp500)."""
    task = get_task(name)
    if name == "weather":
        from llm_as_rnn.tasks.weather import weather_days

        usable = weather_days() - 1
    elif name == "sp500":
        from llm_as_rnn.tasks.sp500 import WINDOW, sp500_days

        usable = sp500_days() - WINDOW - 1
    else:
        raise ConfigError(f"task {name!r} has no bundled data: use --data or --mimic-dir")
    starts = window_starts(usable, sequences, length, seed)
    return EvalData(
        task, [EvalSequence(f"{name}@{s}", task.observations(s, length)) for s in starts]
    )


def mimic(directory: str, sequences: int, length: int, seed: int) -> EvalData:
    """Return patients' admission sequences from a MIMIC-IV directory."""
    from llm_as_rnn.tasks.mimic import load_mimic

    task, pairs = load_mimic(directory, sequences, length, seed)
    return EvalData(task, [EvalSequence(f"patient-{sid}", obs) for sid, obs in pairs])


def user_file(
    path: str,
    task_type: Literal["classification", "regression"],
    labels: tuple[str, ...] | None,
    sequences: int,
    length: int,
) -> EvalData:
    """Return the first ``sequences`` sequences of a user's file, each cut to ``length``."""
    from llm_as_rnn.tasks.generic import load_generic

    task, pairs = load_generic(Path(path), task_type, labels)
    if len(pairs) < sequences:
        raise ConfigError(
            f"{path} holds {len(pairs)} sequences, fewer than --sequences {sequences}"
        )
    return EvalData(task, [EvalSequence(sid, obs[:length]) for sid, obs in pairs[:sequences]])
