"""The evaluation runner: many sequences x methods, concurrent and resumable.

Every finished step is committed to ``OUT/state.db`` before the next one
starts: the graph's checkpoints and trace for the LLM-as-RNN methods, one
store item per step for the baselines. Re-running the same command skips
finished steps; ``steps.jsonl``, ``summary.json``, ``timing.json`` and the
report are then rebuilt from the database, so an interrupted and a straight
run produce the same files (timings excepted, kept apart in ``timing.json``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph.store.base import BaseStore
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llm_as_rnn import prompts
from llm_as_rnn.context import Context
from llm_as_rnn.errors import ConfigError, from_validation
from llm_as_rnn.evals import baselines
from llm_as_rnn.evals.datasets import EvalData, EvalSequence, bundled, mimic, user_file
from llm_as_rnn.evals.metrics import summarize
from llm_as_rnn.graph import build_graph
from llm_as_rnn.journal import Journal, forget
from llm_as_rnn.models import ChatBackend, aresolve
from llm_as_rnn.nodes import ask, caller, usage_of
from llm_as_rnn.sequence import read_records, read_trace, run_sequence
from llm_as_rnn.state import ROLES, StepRecord, Usage
from llm_as_rnn.storage import open_storage
from llm_as_rnn.tasks import Task

METHODS = ("zero-shot", "fhc", "memprompt", "rnn", "rnn-judge")
BASELINES = ("zero-shot", "fhc", "memprompt")


@dataclass
class EvalConfig:
    """Everything an evaluation run needs."""

    out: str
    model: str = "embedded"
    tasks: list[str] = field(default_factory=lambda: ["weather"])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    sequences: int = 2
    steps: int = 5
    seed: int = 0
    budget: int = 4096
    concurrency: int = 4
    context_window: int = 8192
    max_new_tokens: int | None = None
    base_url: str | None = None
    data: str | None = None
    task_type: Literal["classification", "regression"] | None = None
    labels: list[str] | None = None
    mimic_dir: str | None = None
    step_mode: str = "three-call"
    request_timeout: float = 60.0
    max_attempts: int = 4
    db: str | None = None
    """State database; default ``OUT/state.db``. A PostgreSQL URL lets workers share it."""
    shard: tuple[int, int] | None = None
    """``(i, n)``: this worker runs the k-th (task, method, sequence) when ``k % n == i``."""
    workers: int = 1
    """Worker processes on this machine, each a shard ``i/workers`` sharing the database."""

    def identity(self) -> dict[str, Any]:
        """Return what determines the results (not where they go, nor how patiently)."""
        fields = asdict(self)
        for name in (
            "out",
            "concurrency",
            "request_timeout",
            "max_attempts",
            "db",
            "shard",
            "workers",
        ):
            fields.pop(name)
        return fields

    def validate(self) -> None:
        """Raise ``ConfigError`` on a bad combination of options."""
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}")
        if not self.methods:
            raise ConfigError("no --methods given")
        for name, value in (
            ("--sequences", self.sequences),
            ("--steps", self.steps),
            ("--concurrency", self.concurrency),
            ("--budget", self.budget),
            ("--workers", self.workers),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.data and not self.task_type:
            raise ConfigError("--data needs --task-type classification|regression")
        if self.workers > 1 and self.shard is not None:
            raise ConfigError("--workers and --shard do not mix: give one of them")

    def context(self, task: Task, method: str) -> Context:
        """Return the run context of one method."""
        fields: dict[str, Any] = {
            "task": task,
            "model": self.model,
            "base_url": self.base_url,
            "budget": self.budget,
            "seed": self.seed,
            "feedback": "judge" if method == "rnn-judge" else "supervised",
            "step_mode": self.step_mode,
            "request_timeout": self.request_timeout,
            "max_attempts": self.max_attempts,
            "max_retry_seconds": max(30.0, self.request_timeout * self.max_attempts),
        }
        if self.max_new_tokens is not None:
            fields["sampling"] = {r: {"max_new_tokens": self.max_new_tokens} for r in ROLES}
        try:
            return Context(**fields)
        except ValidationError as exc:
            raise from_validation(exc) from None


def load_data(cfg: EvalConfig) -> list[EvalData]:
    """Load every dataset the run asks for (validation happens here, before any write)."""
    if cfg.data:
        assert cfg.task_type is not None
        labels = tuple(x.strip().lower() for x in cfg.labels) if cfg.labels else None
        return [user_file(cfg.data, cfg.task_type, labels, cfg.sequences, cfg.steps)]
    datasets = []
    for name in cfg.tasks:
        if name == "mimic":
            if not cfg.mimic_dir:
                raise ConfigError("the mimic task needs --mimic-dir <your MIMIC-IV directory>")
            datasets.append(mimic(cfg.mimic_dir, cfg.sequences, cfg.steps, cfg.seed))
        else:
            datasets.append(bundled(name, cfg.sequences, cfg.steps, cfg.seed))
    return datasets


def _totals(usage: dict[str, Usage]) -> dict[str, Any]:
    return {
        "calls": sum(u["calls"] for u in usage.values()),
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage.values()),
        "completion_tokens": sum(u["completion_tokens"] for u in usage.values()),
        "retries": sum(u["retries"] for u in usage.values()),
        "latency_s": round(sum(u["latency_s"] for u in usage.values()), 6),
        "usage": usage,
    }


def rnn_record(task: Task, method: str, sequence: str, step: StepRecord) -> dict[str, Any]:
    """Return the ``steps.jsonl`` line of an LLM-as-RNN step."""
    answer = step["prediction"]["answer"]
    return {
        "task": task.name,
        "method": method,
        "sequence": sequence,
        "step": step["step"],
        "id": step["id"],
        "input_text": task.render_input(step["input"]),
        "target": step["target"],
        "prediction": answer,
        "prediction_text": step["prediction"]["text"],
        "valid": step["prediction"]["valid"],
        "correct": task.score(answer, step["target"]).correct,
        "metrics": task.step_metrics(answer, step["target"]),
        "feedback": step["feedback"]["text"],
        "memory_before": step["memory_before"],
        "memory": step["memory_after"],
        "memory_tokens": step["memory_tokens"],
        "rewrite_rejected": step["rewrite_rejected"],
        "enforcement": step["enforcement"],
        "fhc_dropped": None,
        **_totals(step["usage"]),
    }


def eval_namespace(task: str, method: str, sequence: str) -> tuple[str, ...]:
    """Return the store namespace of a baseline's step records."""
    return ("llm_as_rnn", "eval", task, method, sequence)


async def run_baseline(
    method: str,
    data: EvalData,
    seq: EvalSequence,
    ctx: Context,
    backend: ChatBackend,
    store: BaseStore,
    cfg: EvalConfig,
    advance: Callable[[], None],
) -> None:
    """Run (or resume) one baseline on one sequence, committing each step."""
    task = data.task
    namespace = eval_namespace(task.name, method, seq.id)
    done = await read_records(store, namespace)
    sampling = ctx.sampling["predictor"]
    for index in range(len(done), len(seq.observations)):
        observation = seq.observations[index]
        text = task.render_input(observation["input"])
        dropped = None
        if method == "zero-shot":
            messages = baselines.zero_shot_messages(task, text)
        elif method == "fhc":
            limit = cfg.context_window - sampling.max_new_tokens
            messages, dropped = baselines.fhc_messages(
                task, done, text, backend.count_tokens, limit
            )
        else:
            messages = baselines.memprompt_messages(task, done, text)
        await forget(store, ":".join(namespace), index + 1)
        journal = Journal(store, ":".join(namespace), index + 1)
        raw, answer, gens = await ask(
            caller(journal, backend, "predictor", ctx),
            messages,
            task.parse,
            prompts.reask_message(task),
            ctx.reask_attempts,
        )
        target = task.validate_target(observation["target"])
        record = {
            "task": task.name,
            "method": method,
            "sequence": seq.id,
            "step": index + 1,
            "id": observation.get("id"),
            "input_text": text,
            "target": target,
            "prediction": answer,
            "prediction_text": raw,
            "valid": answer is not None,
            "correct": task.score(answer, target).correct,
            "metrics": task.step_metrics(answer, target),
            "feedback": None,
            "memory_before": None,
            "memory": None,
            "memory_tokens": None,
            "rewrite_rejected": None,
            "enforcement": None,
            "fhc_dropped": dropped,
            **_totals({"predictor": usage_of(gens)}),
        }
        await store.aput(namespace, f"{index + 1:06d}", record)
        done.append(record)
        advance()


async def run_rnn(
    method: str,
    data: EvalData,
    seq: EvalSequence,
    ctx: Context,
    graph: Any,
    advance: Callable[[], None],
) -> None:
    """Run (or resume) LLM-as-RNN on one sequence through the graph."""
    thread = ":".join(("eval", data.task.name, method, seq.id))
    await run_sequence(
        graph, seq.observations, thread_id=thread, context=ctx, on_step=lambda _: advance()
    )


async def collect(
    store: BaseStore, datasets: list[EvalData], methods: list[str]
) -> list[dict[str, Any]]:
    """Return every finished step record, in task, method, sequence, step order."""
    records: list[dict[str, Any]] = []
    for data in datasets:
        for method in methods:
            for seq in data.sequences:
                if method in BASELINES:
                    records += await read_records(
                        store, eval_namespace(data.task.name, method, seq.id)
                    )
                else:
                    thread = ":".join(("eval", data.task.name, method, seq.id))
                    records += [
                        rnn_record(data.task, method, seq.id, r)
                        for r in await read_trace(store, thread)
                    ]
    return records


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


def _check_identity(out: Path, cfg: EvalConfig) -> None:
    path = out / "config.json"
    identity = cfg.identity()
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != identity:
            changed = sorted(k for k in identity if previous.get(k) != identity[k])
            raise ConfigError(
                f"{out} holds an evaluation with other settings ({', '.join(changed)}): "
                "re-run it with the same options, or use another --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")


Advance = Callable[[str], None]
"""Called with a method's name each time one of its steps is committed."""

Unit = tuple[EvalData, str, EvalSequence]


def units(
    datasets: list[EvalData], methods: list[str], shard: tuple[int, int] | None
) -> list[Unit]:
    """Return the (task, method, sequence) units this worker runs (all without a shard)."""
    every = [(d, m, s) for d in datasets for m in methods for s in d.sequences]
    if shard is None:
        return every
    index, count = shard
    return every[index::count]


async def run_units(
    cfg: EvalConfig,
    datasets: list[EvalData],
    backend: ChatBackend,
    graph: Any,
    store: BaseStore,
    advance: Advance,
) -> float:
    """Run (or resume) this worker's units, ``cfg.concurrency`` at once; return seconds."""
    gate = asyncio.Semaphore(cfg.concurrency)

    async def unit(data: EvalData, method: str, seq: EvalSequence) -> None:
        async with gate:
            ctx = cfg.context(data.task, method)
            step = lambda: advance(method)  # noqa: E731
            if method in BASELINES:
                await run_baseline(method, data, seq, ctx, backend, store, cfg, step)
            else:
                await run_rnn(method, data, seq, ctx, graph, step)

    settle_heap()
    started = time.perf_counter()
    await asyncio.gather(*(unit(*u) for u in units(datasets, cfg.methods, cfg.shard)))
    return time.perf_counter() - started


def settle_heap() -> None:
    """Move what is alive now (modules, model, datasets) out of the collector's reach.

    Python's full collections walk every live object, and LangGraph, LangChain
    and the HTTP stack make many; each walk stalls the event loop, a few times
    per hundred steps. Frozen after one last collection, they are never walked
    again (less CPU per step, fewer stalls with many sequences at once).
    """
    gc.collect()
    gc.freeze()


async def load_backend(cfg: EvalConfig, datasets: list[EvalData]) -> ChatBackend:
    """Load the model every method of the evaluation calls."""
    probe = cfg.context(datasets[0].task, "rnn")
    return await aresolve(probe.model, probe)


def state_db(cfg: EvalConfig) -> str:
    """Return the evaluation's state database (``OUT/state.db`` by default)."""
    return cfg.db or str(Path(cfg.out) / "state.db")


async def run_eval(cfg: EvalConfig, command: str, console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) an evaluation and write its files; return the summary.

    With ``cfg.workers > 1`` the sequences run in that many worker processes
    (see ``llm_as_rnn.evals.workers``); this process shows progress and
    writes the report.
    """
    from llm_as_rnn.evals.report import write_outputs

    cfg.validate()
    datasets = load_data(cfg)
    console = console or Console(stderr=True)
    out = Path(cfg.out)
    backend: ChatBackend | None = None
    if cfg.workers == 1:
        with console.status(f"loading {cfg.model} ..."):
            backend = await load_backend(cfg, datasets)
    _check_identity(out, cfg)
    async with open_storage(state_db(cfg)) as (saver, store):
        columns = (
            TextColumn("[bold]{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            per_method = sum(len(s.observations) for d in datasets for s in d.sequences)
            bars = {m: progress.add_task(m, total=per_method) for m in cfg.methods}
            for m, done in _done_counts(await collect(store, datasets, cfg.methods)).items():
                progress.update(bars[m], completed=done)

            def advance(method: str) -> None:
                progress.advance(bars[method])

            if backend is None:
                from llm_as_rnn.evals.workers import run_workers

                run_s, model_name = await run_workers(cfg, advance)
            else:
                graph = build_graph(saver, store)
                run_s = await run_units(cfg, datasets, backend, graph, store, advance)
                model_name = backend.name
        records = await collect(store, datasets, cfg.methods)
    summary = {"config": cfg.identity(), "results": summaries(records, datasets, cfg.methods)}
    write_outputs(out, command, cfg, summary, records, timings(records, run_s), model_name)
    return summary


def _done_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["method"]] += 1
    return counts
