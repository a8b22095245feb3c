"""Command line: ``llm-as-rnn run`` (and the commands later issues add).

Errors a user can fix print one line (``error: ...``) and exit with 2, before
anything is written to the database. ``--json`` output goes to stdout alone;
logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from llm_as_rnn.context import Context
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.graph import build_graph
from llm_as_rnn.models import (
    ChatBackend,
    check_endpoint,
    check_spec,
    parse_spec,
    resolve,
    resolve_base_url,
)
from llm_as_rnn.nodes import fit_to_budget
from llm_as_rnn.sequence import run_sequence
from llm_as_rnn.state import ROLES, StepRecord
from llm_as_rnn.storage import open_storage
from llm_as_rnn.tasks import Task, get_task
from llm_as_rnn.view import step_json, step_panel

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def _positive(kind: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be an integer, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{kind} must be > 0, got {value}")
        return value

    return parse


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = _Parser(
        prog="llm-as-rnn",
        description="A frozen LLM as a recurrent predictor with a rewritable memory.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="run a sequence, one timestep per step, resumable",
        description="Run a task's sequence through predict -> critique -> rewrite, "
        "one timestep at a time. Re-running the same command resumes after the last "
        "finished step.",
    )
    run.add_argument("--task", default="weather", help="task name (default: weather)")
    run.add_argument(
        "--model",
        default="embedded",
        help="model spec: embedded | hf:<dir>[#file.gguf] | openai:<model> | fake[:seed]",
    )
    run.add_argument("--steps", type=_positive("--steps"), default=5, help="timesteps (default 5)")
    run.add_argument(
        "--start", type=_non_negative, default=0, help="first day of the sequence (default 0)"
    )
    run.add_argument(
        "--budget",
        type=_positive("--budget"),
        default=None,
        help="memory budget in predictor tokens (default 4096)",
    )
    run.add_argument(
        "--feedback",
        choices=["supervised", "judge", "deferred"],
        default="supervised",
        help="supervised: compare with the truth; judge: LLM critic, no truth; "
        "deferred: the truth is sent after the prediction",
    )
    run.add_argument("--thread", default=None, help="thread id (default: derived from the task)")
    run.add_argument(
        "--db", default="llm-as-rnn.db", help="SQLite database (default llm-as-rnn.db)"
    )
    run.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)"
    )
    run.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible draws)")
    run.add_argument(
        "--max-new-tokens",
        type=_positive("--max-new-tokens"),
        default=None,
        help="cap on generated tokens per call, every role",
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON object per step, nothing else"
    )
    _add_eval(commands)
    return parser


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_eval(commands: Any) -> None:
    ev = commands.add_parser(
        "eval",
        help="compare zero-shot, FHC, MemPrompt and LLM-as-RNN on sequences, resumable",
        description="Run the paper's comparison: every method on N sequences of L steps per "
        "task, concurrently. Re-running the same command resumes; finished steps are kept. "
        "Writes steps.jsonl, summary.json, timing.json, report.md and PNG plots to --out.",
    )
    ev.add_argument("--tasks", type=_csv, default=["weather"], help="weather,sp500,mimic")
    ev.add_argument(
        "--methods",
        type=_csv,
        default=["zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"],
        help="zero-shot,fhc,memprompt,rnn,rnn-judge (default: all)",
    )
    ev.add_argument("--model", default="embedded", help="model spec (as for run)")
    ev.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)"
    )
    ev.add_argument(
        "--sequences", type=_positive("--sequences"), default=2, help="sequences per task"
    )
    ev.add_argument("--steps", type=_positive("--steps"), default=5, help="steps per sequence (L)")
    ev.add_argument(
        "--concurrency", type=_positive("--concurrency"), default=4, help="sequences run at once"
    )
    ev.add_argument("--out", required=True, help="output folder (holds the resumable state)")
    ev.add_argument(
        "--budget", type=_positive("--budget"), default=4096, help="memory budget (tokens)"
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the sequence draw and of sampling")
    ev.add_argument(
        "--max-new-tokens",
        type=_positive("--max-new-tokens"),
        default=None,
        help="cap on generated tokens per call",
    )
    ev.add_argument(
        "--context-window",
        type=_positive("--context-window"),
        default=8192,
        help="model context in tokens; FHC drops its oldest steps to fit",
    )
    ev.add_argument("--data", default=None, help="your CSV/JSONL: sequence_id, step, input, target")
    ev.add_argument(
        "--task-type",
        choices=["classification", "regression"],
        default=None,
        help="with --data: classification or regression",
    )
    ev.add_argument(
        "--labels", type=_csv, default=None, help="with --data: the label set (else inferred)"
    )
    ev.add_argument("--mimic-dir", default=None, help="your MIMIC-IV directory (hosp/, note/)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        if args.command == "run":
            return asyncio.run(run_command(args))
        if args.command == "eval":
            return asyncio.run(eval_command(args, argv))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


def context_from_args(args: argparse.Namespace) -> Context:
    """Build and validate the run context from parsed flags."""
    fields: dict[str, Any] = {
        "task": args.task,
        "model": args.model,
        "feedback": args.feedback,
        "base_url": args.base_url,
        "seed": args.seed,
    }
    if args.budget is not None:
        fields["budget"] = args.budget
    if args.max_new_tokens is not None:
        fields["sampling"] = {
            role: {"max_new_tokens": args.max_new_tokens}
            for role in ("predictor", "critic", "rewriter")
        }
    try:
        return Context(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid {where}: {first['msg']}") from None


async def prepare(ctx: Context, err: Console) -> tuple[Task, ChatBackend]:
    """Validate everything a run needs before any database is touched."""
    task = get_task(ctx.task)
    models = [ctx.model_for(role) for role in ROLES]
    for model in models:
        check_spec(model)
    if any(isinstance(m, str) and parse_spec(m).kind == "openai" for m in models):
        await check_endpoint(resolve_base_url(ctx))
    with err.status(f"loading {ctx.model} ..."):
        predictor = await asyncio.to_thread(resolve, ctx.model_for("predictor"), ctx)
        for model in models[1:]:
            await asyncio.to_thread(resolve, model, ctx)
    try:
        fit_to_budget(task.initial_memory(), task, ctx.budget, predictor.count_tokens)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return task, predictor


async def run_command(args: argparse.Namespace) -> int:
    """Run (or resume) a sequence; return the exit code."""
    err = Console(stderr=True)
    out = err if args.json else Console()
    ctx = context_from_args(args)
    task, _ = await prepare(ctx, err)
    observations = task.observations(args.start, args.steps)
    thread = args.thread or f"{task.name}-start{args.start}-{ctx.feedback}"
    async with open_storage(args.db) as (checkpointer, store):
        graph = build_graph(checkpointer, store)
        done = (await graph.aget_state({"configurable": {"thread_id": thread}})).values.get(
            "step", 0
        )
        if done >= len(observations):
            err.print(
                f"thread {thread!r} already has {done} steps: nothing to do "
                "(raise --steps, or use another --thread / --db)"
            )
            return 0
        if done:
            err.print(f"resuming thread {thread!r} after step {done}")
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
            transient=args.json,
        )
        bar = progress.add_task(f"{task.name} · {thread}", total=len(observations), completed=done)

        def on_step(record: StepRecord) -> None:
            if args.json:
                emit_json(step_json(record))
            else:
                progress.console.print(step_panel(record, len(observations)))
            progress.update(bar, completed=record["step"])

        try:
            with progress:
                result = await run_sequence(
                    graph,
                    observations,
                    thread_id=thread,
                    context=ctx,
                    budget=args.budget,
                    on_step=on_step,
                )
        except ConfigError:
            raise
        except Exception as exc:  # a dead endpoint after its retries, and the like
            err.print(
                f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                " -- progress is saved; re-run the same command to resume",
                markup=False,
                highlight=False,
            )
            return 1
    if not args.json:
        out.print(
            Panel(result.memory, title=f"memory after step {result.steps_done}", title_align="left")
        )
    return 0


async def eval_command(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Run (or resume) an evaluation; return the exit code."""
    from llm_as_rnn.evals.runner import EvalConfig, run_eval

    cfg = EvalConfig(
        out=args.out,
        model=args.model,
        tasks=args.tasks,
        methods=args.methods,
        sequences=args.sequences,
        steps=args.steps,
        seed=args.seed,
        budget=args.budget,
        concurrency=args.concurrency,
        context_window=args.context_window,
        max_new_tokens=args.max_new_tokens,
        base_url=args.base_url,
        data=args.data,
        task_type=args.task_type,
        labels=args.labels,
        mimic_dir=args.mimic_dir,
    )
    err = Console(stderr=True)
    ctx = Context(model=args.model, base_url=args.base_url)
    check_spec(args.model)
    if parse_spec(args.model).kind == "openai":
        await check_endpoint(resolve_base_url(ctx))
    words = sys.argv[1:] if argv is None else list(argv)
    command = "llm-as-rnn " + " ".join(shlex.quote(w) for w in words)
    try:
        summary = await run_eval(cfg, command, err)
    except ConfigError:
        raise
    except Exception as exc:
        err.print(
            f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            " -- finished steps are saved; re-run the same command to resume",
            markup=False,
            highlight=False,
        )
        return 1
    rows = sum(len(methods) for methods in summary["results"].values())
    err.print(f"wrote {args.out}/report.md ({rows} result rows), summary.json, steps.jsonl")
    return 0


def _quiet_libraries() -> None:
    """Keep library chatter (warnings, progress bars) out of the user's output."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "langgraph", "httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on a line of stdout and flush it."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
