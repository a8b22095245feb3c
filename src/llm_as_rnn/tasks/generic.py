"""Your own sequences: a CSV or JSONL file with ``sequence_id, step, input, target``.

Classification (labels inferred from the targets, or given) or regression
(numeric targets). Every row is checked; an error names the file and row.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, Literal

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.state import Observation
from llm_as_rnn.tasks.base import ClassificationTask, RegressionTask, Task

COLUMNS = ("sequence_id", "step", "input", "target")


class GenericClassification(ClassificationTask):
    """Classification over a user's label set."""

    name = "generic"
    description = (
        "You predict the outcome of each step of a sequence from its input; "
        "learn from your memory of earlier steps."
    )
    synonyms: ClassVar[dict[str, str]] = {}

    def __init__(self, labels: tuple[str, ...], name: str = "generic") -> None:
        self.labels = tuple(label.lower() for label in labels)  # type: ignore[misc]
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


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Return ``(row number, row)`` pairs; row numbers as a person counts them."""
    if not path.is_file():
        raise ConfigError(f"data file {path} not found")
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8") as handle:
            if suffix == ".csv":
                reader = csv.DictReader(handle)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise ConfigError(
                        f"{path} row 1 (header): missing column '{missing[0]}': "
                        f"the file needs columns {', '.join(COLUMNS)}"
                    )
                return [(n, dict(row)) for n, row in enumerate(reader, start=2)]
            if suffix in (".jsonl", ".ndjson"):
                rows = []
                for n, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ConfigError(f"{path} row {n}: invalid JSON ({exc.msg})") from None
                    if not isinstance(value, dict):
                        raise ConfigError(f"{path} row {n}: expected a JSON object")
                    rows.append((n, value))
                return rows
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    raise ConfigError(f"{path}: unsupported file type {suffix!r}: use .csv or .jsonl")


def load_generic(
    path: str | Path,
    task_type: Literal["classification", "regression"],
    labels: tuple[str, ...] | None = None,
) -> tuple[Task, list[tuple[str, list[Observation]]]]:
    """Load and check a user's sequences; return the task and ``(id, observations)`` pairs."""
    file = Path(path)
    rows = _rows(file)
    if not rows:
        first = 2 if file.suffix.lower() == ".csv" else 1
        raise ConfigError(f"{file} row {first}: no data rows: the file needs at least one sequence")
    sequences: dict[str, list[tuple[int, int, Observation]]] = defaultdict(list)
    seen: set[str] = set()
    for n, row in rows:
        for column in COLUMNS:
            if column not in row:
                raise ConfigError(f"{file} row {n}: missing column '{column}'")
        sid = str(row["sequence_id"]).strip()
        if not sid:
            raise ConfigError(f"{file} row {n}: empty sequence_id")
        try:
            step = int(str(row["step"]).strip())
        except ValueError:
            raise ConfigError(f"{file} row {n}: step {row['step']!r} is not an integer") from None
        if f"{sid}\x00{step}" in seen:
            raise ConfigError(f"{file} row {n}: step {step} of sequence {sid!r} appears twice")
        seen.add(f"{sid}\x00{step}")
        text = row["input"]
        if text is None or (isinstance(text, str) and not text.strip()):
            raise ConfigError(f"{file} row {n}: empty input")
        target: Any = row["target"]
        if target is None or str(target).strip() == "":
            raise ConfigError(f"{file} row {n}: empty target")
        if task_type == "regression":
            try:
                target = float(target)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{file} row {n}: target {row['target']!r} is not a number "
                    "(regression needs numeric targets)"
                ) from None
            if not math.isfinite(target):
                raise ConfigError(f"{file} row {n}: target {row['target']!r} is not finite")
        else:
            target = str(target).strip().lower()
            if labels is not None and target not in labels:
                raise ConfigError(
                    f"{file} row {n}: target {target!r} is not one of the labels "
                    f"{', '.join(labels)}"
                )
        observation = Observation(input=text, target=target, id=f"{sid}:{step}")
        sequences[sid].append((step, n, observation))
    task: Task
    if task_type == "regression":
        task = GenericRegression(file.stem)
    else:
        found = tuple(sorted({str(o["target"]) for seq in sequences.values() for _, _, o in seq}))
        task = GenericClassification(labels or found, file.stem)
    ordered = [
        (sid, [obs for _, _, obs in sorted(items, key=lambda item: item[0])])
        for sid, items in sorted(sequences.items())
    ]
    return task, ordered
