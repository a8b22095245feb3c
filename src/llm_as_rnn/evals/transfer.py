"""What ``eval --train-sequences K`` trained: the memory's file in ``--out`` and its report lines.

One ``rnn`` thread per task (and budget), from the task's h_0 or the
``--init-memory`` file, learns the K training sequences in order
(``methods.training_thread``); its last memory starts
``rnn-warm`` and ``rnn-frozen`` on every test sequence. It is exported as a
memory file (``core.memfile``), so what the report measured can be deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore

from llm_as_rnn.core.branches import Version
from llm_as_rnn.core.history import export_file
from llm_as_rnn.core.memfile import render
from llm_as_rnn.core.sequence import read_trace
from llm_as_rnn.core.state import StepRecord
from llm_as_rnn.errors import counted
from llm_as_rnn.evals.config import TRANSFER_METHODS, EvalConfig, base_method, training_method
from llm_as_rnn.evals.datasets import EvalData, EvalSequence
from llm_as_rnn.evals.methods import training_thread
from llm_as_rnn.evals.starts import h0_words
from llm_as_rnn.runtime.paths import write_atomic

TRAINED_FILES = "trained-memory-*.json"
"""The names of the trained memories' files in ``--out`` (``*``: the task, and ``@budget``)."""


@dataclass(frozen=True)
class Training:
    """One training thread and the steps it finished."""

    data: EvalData
    method: str
    """The ``rnn`` method that learned it (``rnn``, ``rnn@256`` in a budget sweep)."""
    thread: str
    records: list[StepRecord]

    @property
    def done(self) -> bool:
        """Return whether every training step finished."""
        return len(self.records) == len(self.data.training_observations())

    @property
    def file_name(self) -> str:
        """Return the name of its memory file in ``--out``."""
        _, at, budget = self.method.partition("@")
        return TRAINED_FILES.replace("*", f"{self.data.task.name}{at}{budget}")


def training_methods(cfg: EvalConfig) -> list[str]:
    """Return the ``rnn`` methods whose runs train a transfer method, once each."""
    methods = [m for m in cfg.model_methods() if base_method(m) in TRANSFER_METHODS]
    return list(dict.fromkeys(training_method(m) for m in methods))


async def read_trainings(
    store: BaseStore, cfg: EvalConfig, datasets: list[EvalData]
) -> list[Training]:
    """Return every training of the evaluation, finished or not."""
    out = []
    for data in datasets:
        for method in training_methods(cfg):
            thread = training_thread(cfg, data, method)
            out.append(Training(data, method, thread, await read_trace(store, thread)))
    return out


async def export(store: BaseStore, out: Path, trainings: list[Training]) -> None:
    """Write each finished training's memory file into ``out`` (atomically).

    Its origin is the training thread's last step (``history.export_file``).
    """
    for training in trainings:
        if training.done:
            last = training.records[-1]
            version = Version(
                last["step"],
                last["memory_after"],
                last["enforcement"],
                last["budget"],
                last["memory_tokens"],
                record=last,
            )
            made = await export_file(store, training.thread, version)
            write_atomic(out / training.file_name, render(made))


def training_summary(trainings: list[Training]) -> dict[str, Any]:
    """Return ``{task: {method: what it learned on}}`` for ``summary.json``."""
    out: dict[str, Any] = {}
    for t in trainings:
        out.setdefault(t.data.task.name, {})[t.method] = {
            "sequences": [s.id for s in t.data.training],
            "ids": [[o.get("id") for o in s.observations] for s in t.data.training],
            "steps": len(t.records),
            "budget": t.records[-1]["budget"] if t.records else None,
            "memory_tokens": t.records[-1]["memory_tokens"] if t.records else None,
            "thread": t.thread,
            "file": t.file_name if t.done else None,
        }
    return out


def _span(sequence: EvalSequence, first_step: int) -> str:
    """Return a sequence's id, its first and last step id, and its steps in a thread."""
    days = f"{sequence.observations[0].get('id')} - {sequence.observations[-1].get('id')}"
    last = first_step + len(sequence.observations) - 1
    return f"{sequence.id} ({days}; steps {first_step}-{last})"


def _spans(sequences: list[EvalSequence], one_thread: bool) -> str:
    """Return sequences as the report names them: in one thread one after another, or each alone."""
    out, first = [], 1
    for sequence in sequences:
        out.append(_span(sequence, first))
        first = first + len(sequence.observations) if one_thread else 1
    return ", ".join(out)


def training_section(cfg: EvalConfig, trainings: list[Training]) -> list[str]:
    """Return the report's section on what was trained on what (nothing without training).

    Its words follow the config: the training starts from ``starts.h0_words``
    (the task's h_0, or the ``--init-memory`` file), and so does ``rnn``.
    """
    if not trainings:
        return []
    start = h0_words(cfg)
    rnn = (
        "`rnn` starts every test sequence from that same file: it is warm from the file, "
        "and measures the file's memory learning on."
        if cfg.initial_memory is not None
        else f"`rnn` starts every test sequence from {start}."
    )
    lines = [
        "## Training (rnn-warm, rnn-frozen)",
        "",
        f"Before the test sequences, one `rnn` thread per task and budget, starting from "
        f"{start}, learned the training sequences below, in order (its steps numbered on "
        "across them), never a test sequence; its last memory starts `rnn-warm` (which keeps "
        f"learning) and `rnn-frozen` (no critique, no rewrite) on every test sequence. {rnn}",
        "",
        "| task | trained as | training sequences (first - last step id; thread steps) | "
        "steps | λ | final memory | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in trainings:
        last = t.records[-1] if t.records else None
        steps = f"{len(t.records)} of {len(t.data.training_observations())}"
        tokens = counted(last["memory_tokens"], "token") if last else "-"
        budget = last["budget"] if last else "-"
        file = f"[{t.file_name}]({t.file_name})" if t.done else "not finished"
        lines.append(
            f"| {t.data.task.name} | {t.method} | {_spans(t.data.training, True)} | {steps} "
            f"| {budget} | {tokens} | {file} |"
        )
    tested = {t.data.task.name: t.data.sequences for t in trainings}
    lines += ["", "Test sequences (first - last step id; steps):", ""]
    lines += [f"- {task}: {_spans(seqs, False)}" for task, seqs in tested.items()]
    return [*lines, ""]
