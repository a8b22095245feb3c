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
from llm_as_rnn.errors import ConfigError, describe, from_validation
from llm_as_rnn.graph import build_graph
from llm_as_rnn.models import (
    ChatBackend,
    aresolve,
    check_endpoint,
    check_spec,
    parse_spec,
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


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that calls a model."""
    p.add_argument(
        "--model",
        default="embedded",
        help="embedded | hf:<dir or id>[#file.gguf] | openai:<model> | fake[:seed[:latency_ms]]",
    )
    p.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)"
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="API key (else OPENAI_API_KEY; prefer the variable: flags show in process lists)",
    )
    p.add_argument("--timeout", type=_seconds, default=60.0, help="seconds per model request (60)")
    p.add_argument(
        "--retries",
        type=_positive("--retries"),
        default=4,
        help="attempts per model call on timeouts, 429 and 5xx (4)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=_positive("--max-new-tokens"),
        default=None,
        help="cap on generated tokens per call, every role",
    )
    p.add_argument(
        "--step-mode",
        choices=["three-call", "fused", "lazy"],
        default="three-call",
        help="three-call: the paper's step; fused: critique+rewrite in one call; "
        "lazy: no rewrite after a right prediction",
    )
    p.add_argument("--config", default=None, help="TOML file of options (flags override it)")


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
    run.add_argument("--task", default="weather", help="task name: weather or sp500 (weather)")
    run.add_argument("--steps", type=_positive("--steps"), default=5, help="timesteps (5)")
    run.add_argument("--start", type=_non_negative, default=0, help="first day of the sequence (0)")
    run.add_argument(
        "--budget",
        type=_positive("--budget"),
        default=None,
        help="memory budget in predictor tokens (4096; a resumed thread keeps its own)",
    )
    run.add_argument(
        "--feedback",
        choices=["supervised", "judge", "deferred"],
        default="supervised",
        help="supervised: compare with the truth; judge: LLM critic, no truth; "
        "deferred: the truth is sent after the prediction",
    )
    run.add_argument("--thread", default=None, help="thread id (default: TASK-startK-FEEDBACK)")
    run.add_argument("--db", default="llm-as-rnn.db", help="SQLite database (llm-as-rnn.db)")
    run.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible draws)")
    _add_model_flags(run)
    run.add_argument(
        "--json", action="store_true", help="print one JSON object per step, nothing else"
    )

    ev = commands.add_parser(
        "eval",
        help="compare zero-shot, FHC, MemPrompt and LLM-as-RNN on sequences, resumable",
        description="Run the paper's comparison: every method on N sequences of L steps per "
        "task, concurrently. Re-running the same command resumes; finished steps are kept. "
        "Writes steps.jsonl, summary.json, timing.json, report.md and PNG plots to --out.",
    )
    ev.add_argument("--tasks", type=_csv, default=["weather"], help="weather,sp500,mimic (weather)")
    ev.add_argument(
        "--methods",
        type=_csv,
        default=["zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"],
        help="zero-shot,fhc,memprompt,rnn,rnn-judge (all)",
    )
    ev.add_argument(
        "--sequences", type=_positive("--sequences"), default=2, help="sequences per task (2)"
    )
    ev.add_argument(
        "--steps", type=_positive("--steps"), default=5, help="steps per sequence, L (5)"
    )
    ev.add_argument(
        "--concurrency", type=_positive("--concurrency"), default=4, help="sequences at once (4)"
    )
    ev.add_argument("--out", required=True, help="output folder (holds the resumable state)")
    ev.add_argument(
        "--db",
        default=None,
        help="state database: OUT/state.db (default), a file, or a postgresql:// URL "
        "that workers share",
    )
    ev.add_argument(
        "--shard",
        default=None,
        help="I/N: run only every N-th (task, method, sequence), from the I-th "
        "(machines share --db)",
    )
    ev.add_argument(
        "--workers",
        type=_positive("--workers"),
        default=1,
        help="worker processes on this machine sharing the state (1); one per core "
        "when an endpoint answers faster than one process can send",
    )
    ev.add_argument(
        "--budget", type=_positive("--budget"), default=4096, help="memory budget (4096)"
    )
    ev.add_argument(
        "--seed", type=int, default=0, help="seed of the sequence draw and sampling (0)"
    )
    ev.add_argument(
        "--context-window",
        type=_positive("--context-window"),
        default=8192,
        help="model context in tokens; FHC drops its oldest steps to fit (8192)",
    )
    ev.add_argument("--data", default=None, help="your CSV/JSONL: sequence_id, step, input, target")
    ev.add_argument(
        "--task-type",
        choices=["classification", "regression"],
        default=None,
        help="with --data: classification or regression",
    )
    ev.add_argument(
        "--labels", type=_csv, default=None, help="with --data: the label set (inferred)"
    )
    ev.add_argument("--mimic-dir", default=None, help="your MIMIC-IV directory (hosp/, note/)")
    _add_model_flags(ev)

    tr = commands.add_parser(
        "trace",
        help="show how a thread's memory evolved, step by step (terminal or HTML)",
        description="Print a thread's learning trace: each step's input, prediction, truth, "
        "feedback and coloured memory diff. --html writes one self-contained page with a "
        "timeline, side-by-side memory diffs and plots. Without --thread, list the threads.",
    )
    tr.add_argument("--thread", default=None, help="thread id (omit to list the threads)")
    tr.add_argument("--db", default="llm-as-rnn.db", help="SQLite database (llm-as-rnn.db)")
    tr.add_argument("--html", default=None, help="write the page to this file")
    tr.add_argument("--config", default=None, help="TOML file of options (flags override it)")
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def load_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a TOML config: top-level options and/or a ``[run]`` / ``[eval]`` table.

    Values become the parser's defaults as strings, so they are checked by the
    same types as flags; flags given on the command line override them.
    """
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    command = parser.prog.split()[-1]
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    values |= data.get(command, {})
    known = {a.dest for a in parser._actions}
    out: dict[str, Any] = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise ConfigError(f"config file {path}: unknown option {key!r} for {command}")
        if isinstance(value, bool):
            out[dest] = value
        elif isinstance(value, list):
            out[dest] = ",".join(map(str, value))
        else:
            out[dest] = str(value)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults from ``--config`` when given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        sub = _subcommands(parser)[args.command]
        sub.set_defaults(**load_config(args.config, sub))
        args = parser.parse_args(argv)
    if getattr(args, "api_key", None):
        os.environ["OPENAI_API_KEY"] = args.api_key  # this process only; never stored
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    quiet_libraries()
    try:
        args = parse_args(argv)
        if args.command == "run":
            return asyncio.run(run_command(args))
        if args.command == "eval":
            return asyncio.run(eval_command(args, argv))
        if args.command == "trace":
            return asyncio.run(trace_command(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """Parse ``I/N`` (worker I of N, from 0); raise ``ConfigError`` when malformed."""
    if text is None:
        return None
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not int(index) < int(count):
        raise ConfigError(f"bad --shard {text!r}: use I/N with 0 <= I < N, e.g. 0/2")
    return int(index), int(count)


def redact(words: Sequence[str]) -> list[str]:
    """Return command words with the value of ``--api-key`` hidden."""
    out, hide = [], False
    for word in words:
        if hide:
            out.append("REDACTED")
        elif word.startswith("--api-key="):
            out.append("--api-key=REDACTED")
        else:
            out.append(word)
        hide = word == "--api-key"
    return out


def model_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Return the context fields set by the shared model flags."""
    fields: dict[str, Any] = {
        "model": args.model,
        "base_url": args.base_url,
        "seed": args.seed,
        "request_timeout": args.timeout,
        "max_attempts": args.retries,
        "max_retry_seconds": max(30.0, args.timeout * args.retries),
        "step_mode": args.step_mode,
    }
    if args.max_new_tokens is not None:
        fields["sampling"] = {role: {"max_new_tokens": args.max_new_tokens} for role in ROLES}
    return fields


def make_context(fields: dict[str, Any]) -> Context:
    """Build a context; a validation error becomes a one-line ``ConfigError``."""
    try:
        return Context(**fields)
    except ValidationError as exc:
        raise from_validation(exc) from None


def context_from_args(args: argparse.Namespace) -> Context:
    """Build and validate the run context from parsed flags."""
    fields = model_fields(args) | {"task": args.task, "feedback": args.feedback}
    if args.budget is not None:
        fields["budget"] = args.budget
    return make_context(fields)


async def prepare(ctx: Context, err: Console) -> tuple[Task, ChatBackend]:
    """Validate everything a run needs before any database is touched."""
    task = get_task(ctx.task)
    models = [ctx.model_for(role) for role in ROLES]
    for model in models:
        check_spec(model)
    if any(isinstance(m, str) and parse_spec(m).kind == "openai" for m in models):
        await check_endpoint(resolve_base_url(ctx))
    with err.status(f"loading {ctx.model} ..."):
        predictor = await aresolve(ctx.model_for("predictor"), ctx)
        for model in models[1:]:
            await aresolve(model, ctx)
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
            report_failure(exc, "progress is saved")
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
        db=args.db,
        shard=parse_shard(args.shard),
        workers=args.workers,
        max_new_tokens=args.max_new_tokens,
        step_mode=args.step_mode,
        request_timeout=args.timeout,
        max_attempts=args.retries,
        model=args.model,
        tasks=args.tasks,
        methods=args.methods,
        sequences=args.sequences,
        steps=args.steps,
        seed=args.seed,
        budget=args.budget,
        concurrency=args.concurrency,
        context_window=args.context_window,
        base_url=args.base_url,
        data=args.data,
        task_type=args.task_type,
        labels=args.labels,
        mimic_dir=args.mimic_dir,
    )
    err = Console(stderr=True)
    ctx = make_context(model_fields(args))
    check_spec(args.model)
    if parse_spec(args.model).kind == "openai":
        await check_endpoint(resolve_base_url(ctx))
    words = sys.argv[1:] if argv is None else list(argv)
    command = "llm-as-rnn " + " ".join(shlex.quote(w) for w in redact(words))
    try:
        summary = await run_eval(cfg, command, err)
    except ConfigError:
        raise
    except Exception as exc:
        report_failure(exc, "finished steps are saved")
        return 1
    rows = sum(len(methods) for methods in summary["results"].values())
    err.print(f"wrote {args.out}/report.md ({rows} result rows), summary.json, steps.jsonl")
    return 0


def quiet_libraries() -> None:
    """Keep library chatter (warnings, progress bars) out of the user's output."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "langgraph", "httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


async def trace_command(args: argparse.Namespace) -> int:
    """Print a thread's trace, list threads, or write the HTML page."""
    from pathlib import Path

    from llm_as_rnn.nodes import TRACE_NAMESPACE
    from llm_as_rnn.sequence import read_trace
    from llm_as_rnn.storage import is_postgres, sqlite_path
    from llm_as_rnn.traces import render_html

    if not is_postgres(args.db) and not Path(sqlite_path(args.db)).is_file():
        raise ConfigError(f"database {args.db} not found: give the --db of a run")
    async with open_storage(args.db) as (_, store):
        if args.thread is None:
            spaces = await store.alist_namespaces(prefix=(TRACE_NAMESPACE, "trace"), limit=10_000)
            threads = sorted(ns[2] for ns in spaces)
            print("\n".join(threads) if threads else f"no traced threads in {args.db}")
            return 0
        records = await read_trace(store, args.thread)
    if not records:
        raise ConfigError(
            f"no steps for thread {args.thread!r} in {args.db}: run `llm-as-rnn trace --db "
            f"{args.db}` to list its threads"
        )
    if args.html:
        Path(args.html).write_text(render_html(records, args.thread), encoding="utf-8")
        print(f"wrote {args.html} ({len(records)} steps)", file=sys.stderr)
        return 0
    console = Console()
    for record in records:
        console.print(step_panel(record, len(records)))
    last = records[-1]
    console.print(
        Panel(last["memory_after"], title=f"memory after step {last['step']}", title_align="left")
    )
    return 0


def report_failure(exc: BaseException, saved: str) -> None:
    """Print a run failure as one plain line on stderr (no wrapping, no traceback)."""
    print(f"error: {describe(exc)} -- {saved}; re-run the same command to resume", file=sys.stderr)


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on a line of stdout and flush it."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
