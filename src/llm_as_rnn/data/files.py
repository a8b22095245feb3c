"""Your own sequences: a CSV or JSONL file with ``sequence_id, step, input, target``.

For a named task (``load_task_file``) every target is checked by the task;
without one (``load_file``) the file defines a classification (labels
inferred from the targets, or given) or a regression (numeric targets).
Every row is checked; an error names the file and row.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from llm_as_rnn.core.state import Observation, blank
from llm_as_rnn.errors import ConfigError, DataError
from llm_as_rnn.tasks import Task, get_task
from llm_as_rnn.tasks.generic import GenericClassification, GenericRegression
from llm_as_rnn.tasks.labels import normalize

COLUMNS = ("sequence_id", "step", "input", "target")
STEP = re.compile(r"[-+]?[0-9]{1,18}")
"""A step number: ASCII digits (``int`` would also take ``1_0`` and other scripts' digits)."""

Sequences = list[tuple[str, list[Observation]]]
"""``(sequence id, observations in step order)`` pairs, sorted by id."""


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Return ``(row number, row)`` pairs; row numbers as a person counts them."""
    if not path.is_file():
        raise ConfigError(f"data file {path} not found")
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8-sig") as handle:  # spreadsheets write a BOM
            if suffix == ".csv":
                reader = csv.DictReader(handle)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(
                        f"{path} row 1 (header): missing column '{missing[0]}': "
                        f"the file needs columns {', '.join(COLUMNS)}"
                    )
                rows = []
                for n, row in enumerate(reader, start=2):
                    if None in row or None in row.values():  # extra or missing fields
                        given = len(row.get(None) or []) + sum(
                            1 for k, v in row.items() if k is not None and v is not None
                        )
                        fix = (
                            'quote a field that holds a comma ("Password reset, link expired")'
                            if None in row
                            else "give every column a value"
                        )
                        raise DataError(
                            f"{path} row {n}: has {given} fields, the header has "
                            f"{len(reader.fieldnames or [])}: {fix}"
                        )
                    rows.append((n, dict(row)))
                return rows
            if suffix in (".jsonl", ".ndjson"):
                rows = []
                for n, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path} row {n}: invalid JSON ({exc.msg})") from None
                    except ValueError:  # an integer of more than 4300 digits
                        raise DataError(f"{path} row {n}: a number too long to read") from None
                    if not isinstance(value, dict):
                        raise DataError(f"{path} row {n}: expected a JSON object")
                    rows.append((n, value))
                return rows
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    raise ConfigError(f"{path}: unsupported file type {suffix!r}: use .csv or .jsonl")


def read_sequences(path: str | Path, check: Callable[[Any, int], Any]) -> Sequences:
    """Read and check a file's rows; ``check(target, row)`` returns the canonical target."""
    file = Path(path)
    rows = read_rows(file)
    if not rows:
        first = 2 if file.suffix.lower() == ".csv" else 1
        raise DataError(f"{file} row {first}: no data rows: the file needs at least one sequence")
    sequences: dict[str, list[tuple[int, Observation]]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for n, row in rows:
        for column in COLUMNS:
            if column not in row:
                raise DataError(f"{file} row {n}: missing column '{column}'")
        raw_id = row["sequence_id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or blank(str(raw_id)):
            raise DataError(
                f"{file} row {n}: sequence_id {json.dumps(raw_id)} is not a name: give text"
            )
        sid = str(raw_id).strip()
        step_text = str(row["step"]).strip()
        if isinstance(row["step"], bool) or not STEP.fullmatch(step_text):
            raise DataError(
                f"{file} row {n}: step {json.dumps(row['step'])} is not an integer "
                "(ASCII digits, e.g. 3)"
            )
        step = int(step_text)
        if (sid, step) in seen:
            raise DataError(f"{file} row {n}: step {step} of sequence {sid!r} appears twice")
        seen.add((sid, step))
        text = row["input"]
        if blank(text):
            raise DataError(f"{file} row {n}: empty input ({json.dumps(text)})")
        target: Any = row["target"]
        if blank(target):
            raise DataError(f"{file} row {n}: empty target ({json.dumps(target)})")
        observation = Observation(input=text, target=check(target, n), id=f"{sid}:{step}")
        sequences[sid].append((step, observation))
    return [
        (sid, [obs for _, obs in sorted(items, key=lambda item: item[0])])
        for sid, items in sorted(sequences.items())
    ]


def load_task_file(path: str | Path, task: Task) -> Sequences:
    """Read a file of sequences for ``task``, each target checked by the task."""

    def check(target: Any, n: int) -> Any:
        try:
            return task.validate_target(target)
        except ValueError as exc:
            raise DataError(f"{path} row {n}: {exc} (task {task.name!r})") from None

    return read_sequences(path, check)


def load_file(
    path: str | Path,
    task_type: Literal["classification", "regression"],
    labels: tuple[str, ...] | None = None,
) -> tuple[Task, Sequences]:
    """Read a file of sequences and the task it defines (generic classification or regression)."""
    file = Path(path)
    if task_type == "regression" and labels:
        raise ConfigError("labels (--labels) go with classification, not regression: drop them")
    if task_type == "regression":  # each target read by the task's number grammar
        task = GenericRegression(file.stem)
        return task, load_task_file(file, task)
    wanted = tuple(dict.fromkeys(normalize(label) for label in labels)) if labels else None

    def check(target: Any, n: int) -> Any:
        if isinstance(target, bool) or not isinstance(target, str | int | float):
            raise DataError(
                f"{file} row {n}: target {json.dumps(target)} is not a label: give text"
            )
        label = normalize(str(target))
        if wanted is not None and label not in wanted:
            raise DataError(
                f"{file} row {n}: target {label!r} is not one of the labels {', '.join(wanted)}"
            )
        return label

    sequences = read_sequences(file, check)
    found = tuple(sorted({str(o["target"]) for _, seq in sequences for o in seq}))
    return GenericClassification(wanted or found, file.stem), sequences


def load_sequences(
    path: str | Path,
    task: str | None,
    task_type: Literal["classification", "regression"] | None,
    labels: Sequence[str] | None = None,
) -> tuple[Task, Sequences]:
    """Read a file for a named task, or as the generic task of ``task_type`` (exactly one)."""
    if task is not None:
        named = get_task(task)
        return named, load_task_file(path, named)
    assert task_type is not None, "give a task name or a task type"
    return load_file(path, task_type, tuple(labels) if labels else None)
