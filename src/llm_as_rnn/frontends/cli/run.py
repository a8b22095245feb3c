"""``llm-as-rnn run``: one sequence, step by step, resumable, with a live view.

The sequence is a window of a task's bundled data, or one sequence of a
user's file (``--data``) read for a named task (``--task``, a plugin's
included) or a generic one (``--task-type``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from langgraph.store.base import BaseStore
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

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import (
    check_thread,
    differences,
    digest,
    listed,
    recorded_settings,
    settings_of,
)
from llm_as_rnn.core.sequence import read_trace, run_sequence
from llm_as_rnn.core.state import Observation, StepRecord
from llm_as_rnn.data import bundled_window, without_lagged_truth
from llm_as_rnn.data.files import Sequences, load_sequences
from llm_as_rnn.errors import USER_ERRORS, ConfigError
from llm_as_rnn.frontends.cli.output import emit_json, report_failure
from llm_as_rnn.frontends.cli.preflight import check_models, context_from_args, load_models
from llm_as_rnn.frontends.terminal import run_summary, step_json, step_panel
from llm_as_rnn.runtime.leases import holding
from llm_as_rnn.runtime.secrets import public_url
from llm_as_rnn.runtime.storage import (
    holds_threads,
    is_postgres,
    leases_of,
    open_storage,
    sqlite_path,
)
from llm_as_rnn.tasks import Task, get_task

DEFAULT_STEPS = 5
"""Steps of bundled data run when ``--steps`` is not given."""


def pick(path: str, pairs: Sequences, wanted: str | None) -> tuple[str, list[Observation]]:
    """Return the sequence ``wanted`` of a file (its first one when None)."""
    if wanted is None:
        return pairs[0]
    for sid, observations in pairs:
        if sid == wanted:
            return sid, observations
    shown = ", ".join(repr(sid) for sid, _ in pairs[:5]) + (", ..." if len(pairs) > 5 else "")
    raise ConfigError(f"{path} has no sequence {wanted!r}: its sequences are {shown}")


def file_sequence(args: argparse.Namespace) -> tuple[Task, list[Observation], str]:
    """Return the task, the observations and the default thread of a ``--data`` run."""
    if args.task and args.task_type:
        raise ConfigError("--data takes --task NAME or --task-type, not both")
    if not args.task and not args.task_type:
        raise ConfigError(
            "--data needs --task NAME (a task that reads the file) or "
            "--task-type classification|regression"
        )
    task, pairs = load_sequences(args.data, args.task, args.task_type, args.labels)
    sid, observations = pick(args.data, pairs, args.sequence)
    if args.start >= len(observations):
        raise ConfigError(
            f"--start {args.start} is past the end of sequence {sid!r} "
            f"({len(observations)} steps in {args.data})"
        )
    chosen = observations[args.start :]
    if args.steps is not None:
        chosen = chosen[: args.steps]
    return task, chosen, f"{Path(args.data).stem}-{sid}-start{args.start}"


def sequence_of(args: argparse.Namespace) -> tuple[Task, list[Observation], str]:
    """Return the task, the observations and the default thread name of a run."""
    if args.data:
        return file_sequence(args)
    for flag, value in (
        ("--task-type", args.task_type),
        ("--labels", args.labels),
        ("--sequence", args.sequence),
    ):
        if value is not None:
            raise ConfigError(f"{flag} goes with --data FILE")
    task = get_task(args.task or "weather")
    observations = bundled_window(task.name, args.start, args.steps or DEFAULT_STEPS)
    return task, observations, f"{task.name}-start{args.start}"


async def default_thread(
    store: BaseStore, name: str, ctx: Context, budget: int | None, err: Console
) -> str:
    """Return the thread a run without ``--thread`` goes on: ``name``, or one for its settings.

    ``name`` (file or task, sequence, start, feedback) while that thread is new
    or was run with these settings, so threads of earlier versions resume;
    else ``name-DIGEST``, DIGEST a hash of the settings derived by
    ``identity.settings_of``: other settings (model, answer mode, any
    ``Context`` field) make another thread, never a refusal after a load.
    """
    before = await recorded_settings(store, name)
    changed = differences(before, settings_of(ctx, budget)) if before else []
    if not changed:
        return name
    thread = f"{name}-{digest(settings_of(ctx, budget or ctx.budget))[:8]}"
    err.print(
        f"thread {name!r} was run with other settings ({listed(changed)}): "
        f"these go on thread {thread!r}",
        markup=False,
        highlight=False,
    )
    return thread


def trace_hint(db: str, thread: str) -> str:
    """Return a run's last line: where its trace is and the command that opens it."""
    if is_postgres(db):
        shown = public_url(db)  # credentials are never shown: PGUSER, PGPASSWORD, ~/.pgpass
    elif (path := sqlite_path(db)) == ":memory:":
        return (
            f"trace: thread {thread} was in memory only (--db :memory:); use --db FILE to keep it"
        )
    else:
        shown = os.path.expanduser(path)  # quoted, a ~ would not be expanded by the shell
    command = ["llm-as-rnn", "trace", f"--db={shown}", f"--thread={thread}", "--html=trace.html"]
    return f"trace: {shown} (thread {thread}) -- open it with: {shlex.join(command)}"


async def run_command(args: argparse.Namespace) -> int:
    """Run (or resume) a sequence; return the exit code."""
    err = Console(stderr=True)
    out = err if args.json else Console()
    task, observations, name = sequence_of(args)
    if args.truth_free:
        observations = without_lagged_truth(task, observations)
        name += "-truthfree"
    ctx = context_from_args(args, task)
    await check_models(ctx)
    # A database that may hold the thread is checked before any model loads (a
    # thread run with other settings is refused at once); a new one is created
    # only once the models loaded and the budget fits, so a refusal leaves no file.
    fresh = not holds_threads(args.db)
    if fresh:
        await load_models(ctx, err)
    async with open_storage(args.db) as (checkpointer, store):
        thread = args.thread or await default_thread(
            store, f"{name}-{ctx.feedback}", ctx, args.budget, err
        )
        graph = build_graph(checkpointer, store)
        async with holding(leases_of(store), thread):  # refuse a busy thread first
            done = (await graph.aget_state({"configurable": {"thread_id": thread}})).values.get(
                "step", 0
            )
            records = await read_trace(store, thread) if done else []
            await check_thread(
                store,
                thread,
                ctx,
                budget=args.budget,
                observations=observations,
                records=records,
                allow_new_settings=args.allow_new_settings,
            )
            if done >= len(observations):
                err.print(
                    f"thread {thread!r} already has {done} steps: nothing to do "
                    "(raise --steps, or use another --thread / --db)"
                )
                say_where(args, thread)
                return 0
            if not fresh:
                await load_models(ctx, err)
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
            bar = progress.add_task(
                f"{task.name} · {thread}", total=len(observations), completed=done
            )

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
                        allow_new_settings=args.allow_new_settings,
                    )
            except USER_ERRORS:
                raise
            except BrokenPipeError:
                raise
            except Exception as exc:  # a dead endpoint after its retries, and the like
                report_failure(exc, "progress is saved")
                return 1
            records = await read_trace(store, thread)
    if not args.json:
        out.print(
            Panel(result.memory, title=f"memory after step {result.steps_done}", title_align="left")
        )
        out.print(run_summary(records))
    say_where(args, thread)
    return 0


def say_where(args: argparse.Namespace, thread: str) -> None:
    """Print the run's last line, ``trace_hint``, plain (no wrapping: it is a command to copy)."""
    print(trace_hint(args.db, thread), file=sys.stderr if args.json else sys.stdout)
