"""Evaluation datasets: deterministic, seeded sequences of length L per task.

- bundled data (weather, sp500): non-overlapping windows of L consecutive
  days, N of them drawn by a seeded shuffle, in time order;
- mimic: the user's MIMIC-IV directory (``--mimic-dir``), N patients with at
  least L admissions (seeded), the first L admissions of each;
- a user's CSV/JSONL (``--data``): the first N sequences by id, each cut to L,
  for a named task or a generic one (``--task-type``).

With ``--train-sequences K``, K + N sequences are drawn the same way and the
first K are the training sequences, never a test one: the earliest windows
of bundled data (training precedes testing in time), the first K patients,
the first K sequences of a file by id (the test ones are the N after them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

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
    """The test sequences."""
    training: list[EvalSequence] = field(default_factory=list)
    """The training sequences (``--train-sequences``), in the order they are learned."""

    def training_observations(self) -> list[Observation]:
        """Return the training sequences' steps, one after the other (one thread learns them)."""
        return [o for s in self.training for o in s.observations]


def window_starts(usable: int, sequences: int, length: int, seed: int) -> list[int]:
    """Pick ``sequences`` non-overlapping window starts in ``[0, usable)`` (seeded, sorted)."""
    candidates = list(range(0, usable - length + 1, length))
    if len(candidates) < sequences:
        raise ConfigError(
            f"{counted(usable, 'day')} cannot hold {counted(sequences, 'sequence')} of "
            f"{counted(length, 'step')}: lower --sequences, --train-sequences or --steps"
        )
    random.Random(seed).shuffle(candidates)
    return sorted(candidates[:sequences])


def split(task: Task, drawn: list[EvalSequence], training: int) -> EvalData:
    """Return the drawn sequences as data: the first ``training`` learn, the rest test."""
    return EvalData(task, drawn[training:], drawn[:training])


def bundled_windows(
    name: str, sequences: int, length: int, seed: int, training: int = 0
) -> EvalData:
    """Return seeded windows of a task's bundled data (the ``training`` earliest first)."""
    task = get_task(name)
    data = bundled(task.name)
    starts = window_starts(data.starts(), training + sequences, length, seed)
    drawn = [EvalSequence(f"{name}@{s}", data.window(s, length)) for s in starts]
    return split(task, drawn, training)


def mimic(directory: str, sequences: int, length: int, seed: int, training: int = 0) -> EvalData:
    """Return patients' admission sequences from a MIMIC-IV directory."""
    from llm_as_rnn.data.mimic import load_mimic

    task, pairs = load_mimic(directory, training + sequences, length, seed)
    return split(task, [EvalSequence(f"patient-{sid}", obs) for sid, obs in pairs], training)


def file_sequences(
    path: str, task: Task, pairs: Sequences, sequences: int, length: int, training: int = 0
) -> EvalData:
    """Return the first sequences of a user's file by id, each cut to ``length``.

    The first ``training`` learn; the ``sequences`` after them test.
    """
    wanted = training + sequences
    if len(pairs) < wanted:
        held = counted(len(pairs), "sequence")
        if training:
            raise ConfigError(
                f"{path} holds {held}, fewer than --train-sequences {training} + --sequences "
                f"{sequences}: ask for {len(pairs)} or fewer in all"
            )
        raise ConfigError(
            f"{path} holds {held}, fewer than --sequences {sequences}: pass --sequences "
            f"{len(pairs)} or fewer"
        )
    drawn = [EvalSequence(sid, obs[:length]) for sid, obs in pairs[:wanted]]
    return split(task, drawn, training)


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
            [EvalSequence(s.id, without_lagged_truth(d.task, s.observations)) for s in d.training],
        )
        for d in datasets
    ]


def find_data(cfg: EvalConfig) -> list[EvalData]:
    """Load the datasets of the run as they are stored."""
    if cfg.data:  # validate() made sure of one task name or a task type
        name = None if cfg.task_type else cfg.tasks[0]
        task, pairs = load_sequences(cfg.data, name, cfg.task_type, cfg.labels)
        k = cfg.train_sequences
        return [file_sequences(cfg.data, task, pairs, cfg.sequences, cfg.steps, k)]
    datasets = []
    for name in cfg.tasks:
        if name == "mimic":
            if not cfg.mimic_dir:
                raise ConfigError("the mimic task needs --mimic-dir <your MIMIC-IV directory>")
            datasets.append(
                mimic(cfg.mimic_dir, cfg.sequences, cfg.steps, cfg.seed, cfg.train_sequences)
            )
        else:
            datasets.append(
                bundled_windows(name, cfg.sequences, cfg.steps, cfg.seed, cfg.train_sequences)
            )
    return datasets
