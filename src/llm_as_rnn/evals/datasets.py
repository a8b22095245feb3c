"""Evaluation datasets: deterministic, seeded sequences of length L per task.

- bundled data (weather, sp500): non-overlapping windows of L consecutive
  days, N of them drawn by a seeded shuffle, in time order;
- mimic: the user's MIMIC-IV directory (``--mimic-dir``), N patients with at
  least L admissions (seeded), the first L admissions of each;
- a user's CSV/JSONL (``--data``): the first N sequences by id, each cut to L,
  for a named task or a generic one (``--task-type``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from llm_as_rnn.core.state import Observation
from llm_as_rnn.data import bundled, without_lagged_truth
from llm_as_rnn.data.files import Sequences, load_sequences
from llm_as_rnn.errors import ConfigError, counted
from llm_as_rnn.evals.config import EvalConfig
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
            f"{counted(usable, 'day')} cannot hold {counted(sequences, 'sequence')} of "
            f"{counted(length, 'step')}: lower --sequences or --steps"
        )
    random.Random(seed).shuffle(candidates)
    return sorted(candidates[:sequences])


def bundled_windows(name: str, sequences: int, length: int, seed: int) -> EvalData:
    """Return seeded windows of a task's bundled data."""
    task = get_task(name)
    data = bundled(task.name)
    starts = window_starts(data.starts(), sequences, length, seed)
    return EvalData(task, [EvalSequence(f"{name}@{s}", data.window(s, length)) for s in starts])


def mimic(directory: str, sequences: int, length: int, seed: int) -> EvalData:
    """Return patients' admission sequences from a MIMIC-IV directory."""
    from llm_as_rnn.data.mimic import load_mimic

    task, pairs = load_mimic(directory, sequences, length, seed)
    return EvalData(task, [EvalSequence(f"patient-{sid}", obs) for sid, obs in pairs])


def file_sequences(
    path: str, task: Task, pairs: Sequences, sequences: int, length: int
) -> EvalData:
    """Return the first ``sequences`` sequences of a user's file, each cut to ``length``."""
    if len(pairs) < sequences:
        raise ConfigError(
            f"{path} holds {counted(len(pairs), 'sequence')}, fewer than --sequences "
            f"{sequences}: pass --sequences {len(pairs)} or fewer"
        )
    return EvalData(task, [EvalSequence(sid, obs[:length]) for sid, obs in pairs[:sequences]])


def load_data(cfg: EvalConfig) -> list[EvalData]:
    """Load every dataset the run asks for (validation happens here, before any write).

    With ``cfg.truth_free`` the inputs lose their lagged-truth fields.
    """
    datasets = find_data(cfg)
    if not cfg.truth_free:
        return datasets
    return [
        EvalData(
            d.task,
            [EvalSequence(s.id, without_lagged_truth(d.task, s.observations)) for s in d.sequences],
        )
        for d in datasets
    ]


def find_data(cfg: EvalConfig) -> list[EvalData]:
    """Load the datasets of the run as they are stored."""
    if cfg.data:  # validate() made sure of one task name or a task type
        name = None if cfg.task_type else cfg.tasks[0]
        task, pairs = load_sequences(cfg.data, name, cfg.task_type, cfg.labels)
        return [file_sequences(cfg.data, task, pairs, cfg.sequences, cfg.steps)]
    datasets = []
    for name in cfg.tasks:
        if name == "mimic":
            if not cfg.mimic_dir:
                raise ConfigError("the mimic task needs --mimic-dir <your MIMIC-IV directory>")
            datasets.append(mimic(cfg.mimic_dir, cfg.sequences, cfg.steps, cfg.seed))
        else:
            datasets.append(bundled_windows(name, cfg.sequences, cfg.steps, cfg.seed))
    return datasets
