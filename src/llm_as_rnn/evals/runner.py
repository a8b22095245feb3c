"""The evaluation runner: many sequences x methods, concurrent and resumable.

Every finished step is committed to ``OUT/state.db`` before the next one
starts (see ``methods``). Re-running the same command skips finished steps;
``steps.jsonl``, ``summary.json``, ``timing.json`` and the report are then
rebuilt from the database, so an interrupted and a straight run produce the
same files (timings excepted, kept apart in ``timing.json``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llm_as_rnn.core.differences import differences, listed
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.rejections import structuring
from llm_as_rnn.errors import ConfigError, first_line
from llm_as_rnn.evals.config import EvalConfig
from llm_as_rnn.evals.datasets import EvalData, load_data
from llm_as_rnn.evals.methods import TRAINING, collect, load_backend, run_units
from llm_as_rnn.evals.metrics import summarize
from llm_as_rnn.evals.report import short_sequences, write_outputs
from llm_as_rnn.evals.starts import start_section
from llm_as_rnn.evals.transfer import (
    export,
    read_trainings,
    training_methods,
    training_section,
    training_summary,
)
from llm_as_rnn.evals.workers import run_workers
from llm_as_rnn.runtime.backends import ChatBackend, Structuring
from llm_as_rnn.runtime.paths import write_atomic
from llm_as_rnn.runtime.storage import open_storage


def summaries(
    records: list[dict[str, Any]], datasets: list[EvalData], methods: list[str]
) -> dict[str, Any]:
    """Return ``{task: {method: summary}}``."""
    kinds = {d.task.name: d.task.kind for d in datasets}
    grouped: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in records:
        grouped[r["task"]][r["method"]][r["sequence"]].append(r)
    return {
        task: {m: summarize(grouped[task][m], kinds[task]) for m in methods if m in grouped[task]}
        for task in kinds
    }


def timings(records: list[dict[str, Any]], run_s: float) -> dict[str, Any]:
    """Return this invocation's run time and the mean model latency per step."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        sums[r["task"]][r["method"]].append(r["latency_s"])
    latency = {
        t: {
            m: {"latency_s_per_step": round(sum(v) / len(v), 6), "steps": len(v)}
            for m, v in ms.items()
        }
        for t, ms in sums.items()
    }
    return {"run_s": round(run_s, 3), "latency": latency}


def invalid_warnings(records: list[dict[str, Any]], limit: float = 0.5) -> list[str]:
    """Return one warning line per task and method whose answers are mostly unreadable."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["task"], r["method"])].append(r)
    lines = []
    for (task, method), rows in groups.items():
        invalid = [r for r in rows if not r["valid"]]
        if len(invalid) > limit * len(rows):
            examples = "; ".join(repr(r["prediction_text"][:80]) for r in invalid[:2])
            lines.append(
                f"warning: {task}/{method}: {len(invalid)} of {len(rows)} answers could not be "
                f"read (scored wrong); e.g. {examples}"
            )
    return lines


def check_identity(out: Path, cfg: EvalConfig, record: bool = True) -> None:
    """Refuse to resume an evaluation with other settings; record a new one's (``record``)."""
    path = out / "config.json"
    identity = cfg.identity()
    if path.exists():
        previous = json.loads(path.read_text())
        changed = differences(previous, json.loads(json.dumps(identity)))
        if changed:
            raise ConfigError(
                f"{out} holds an evaluation with other settings ({listed(changed)}): "
                "re-run it with the same options, or use another --out"
            )
    elif out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: give a folder")
    elif record:
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write to --out {out}: {first_line(exc)}") from None


async def run_eval(cfg: EvalConfig, command: str, console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) an evaluation and write its files; return the summary.

    With ``cfg.workers > 1`` the sequences run in that many worker processes
    (see ``llm_as_rnn.evals.workers``); this process shows progress and
    writes the report.
    """
    cfg.validate()
    datasets = load_data(cfg)
    cfg.check([d.task for d in datasets])
    console = console or Console(stderr=True)
    for line in cfg.free_answers([d.task for d in datasets]):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    out = Path(cfg.out)
    check_identity(out, cfg, record=False)  # before loading: a refusal costs no load
    backend: ChatBackend | None = None
    models = bool(cfg.model_methods())  # reference rows alone need no model
    if cfg.workers == 1 and models:
        with console.status(f"loading {cfg.model} ..."):
            backend = await load_backend(cfg, datasets)
    check_identity(out, cfg)
    async with open_storage(cfg.state_db()) as (saver, store):
        columns = (
            TextColumn("[bold]{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            bars = {}
            if training_methods(cfg):  # first: the transfer methods wait for it
                trained = await read_trainings(store, cfg, datasets)
                total = sum(len(t.data.training_observations()) for t in trained)
                done = sum(len(t.records) for t in trained)
                bars[TRAINING] = progress.add_task(TRAINING, total=total, completed=done)
            per_method = sum(len(s.observations) for d in datasets for s in d.sequences)
            bars |= {m: progress.add_task(m, total=per_method) for m in cfg.model_methods()}
            for m, done in done_counts(await collect(store, datasets, cfg)).items():
                if m in bars:
                    progress.update(bars[m], completed=done)

            def advance(method: str) -> None:
                progress.advance(bars[method])

            structured: Structuring | None = None  # no model: nothing was structured
            if not models:
                run_s, model_name = 0.0, "no model: reference rows only"
            elif backend is None:
                run_s, model_name, structured = await run_workers(cfg, advance)
            else:
                graph = build_graph(saver, store)
                run_s = await run_units(cfg, datasets, backend, graph, store, advance)
                model_name = backend.name
                structured = await structuring(cfg.context(datasets[0].task, "rnn"))
        records = await collect(store, datasets, cfg)
        trainings = await read_trainings(store, cfg, datasets)
        await export(store, out, trainings)
    summary = {
        "config": cfg.identity(),
        "structured_updates": structured,
        "results": summaries(records, datasets, cfg.report_methods()),
    }
    if trainings:
        summary["training"] = training_summary(trainings)
    for line in [*short_sequences(records, cfg.steps), *invalid_warnings(records)]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    write_outputs(
        out,
        command,
        cfg,
        summary,
        records,
        timings(records, run_s),
        model_name,
        [*start_section(cfg), *training_section(cfg, trainings)],
    )
    return summary


def done_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Return the finished steps per method."""
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["method"]] += 1
    return counts
