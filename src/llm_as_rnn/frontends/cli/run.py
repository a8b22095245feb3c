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
from dataclasses import dataclass, replace
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
from rich.text import Text

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.differences import differences, listed
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import (
    check_thread,
    digest,
    first_changed_step,
    recorded_settings,
    settings_of,
)
from llm_as_rnn.core.rejections import structuring
from llm_as_rnn.core.sequence import read_trace, run_sequence
from llm_as_rnn.core.state import Observation, StepRecord
from llm_as_rnn.core.warm import warm_context
from llm_as_rnn.data import bundled_window, without_lagged_truth
from llm_as_rnn.data.files import Sequences, load_sequences
from llm_as_rnn.errors import USER_ERRORS, ConfigError
from llm_as_rnn.frontends.cli.output import emit_json, report_failure
from llm_as_rnn.frontends.cli.preflight import (
    check_models,
    context_from_args,
    initial_memory_of,
    load_models,
)
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


@dataclass(frozen=True)
class Run:
    """What a run's command line chose: the task, the steps, the default thread, the data."""

    task: Task
    observations: list[Observation]
    name: str
    """The default thread's name (file or task, sequence, start)."""
    source: str
    """Where the steps come from (a file's absolute path and sequence, or the bundled
    task): files of one name in two folders make two default threads."""


def file_sequence(args: argparse.Namespace) -> Run:
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
    name = f"{Path(args.data).stem}-{sid}-start{args.start}"
    return Run(task, chosen, name, f"{os.path.abspath(args.data)}#{sid}")


def sequence_of(args: argparse.Namespace) -> Run:
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
    return Run(task, observations, f"{task.name}-start{args.start}", f"bundled:{task.name}")


async def default_thread(
    store: BaseStore, name: str, chosen: Run, ctx: Context, budget: int | None
) -> tuple[str, str | None]:
    """Return the thread a run without ``--thread`` goes on, and a line saying why, if not ``name``.

    ``name`` (file or task, sequence, start, feedback) while that thread is new
    or was run with these settings and data, so threads of earlier versions
    resume; else ``name-DIGEST``, DIGEST a hash of the settings derived by
    ``identity.settings_of`` (and of ``chosen.source`` when ``name`` holds
    another file's steps): other settings (model, answer mode, any ``Context``
    field) or another file of the same name make another thread, never a
    refusal after a load.
    """
    before = await recorded_settings(store, name)
    if before is None:
        return name, None
    changed = differences(before, settings_of(ctx, budget))
    key = settings_of(ctx, budget or ctx.budget)
    what = "settings"
    if first_changed_step(chosen.observations, await read_trace(store, name), ctx):
        changed.append("data: another file, or an edited one")
        key["data"] = chosen.source
        what = "settings or data" if len(changed) > 1 else "data"
    if not changed:
        return name, None
    thread = f"{name}-{digest(key)[:8]}"
    notice = f"thread {name!r} was run with other {what} ({listed(changed)})"
    return thread, f"{notice}: these go on thread {thread!r}"


def check_data(thread: str, chosen: Run, records: list[StepRecord], ctx: Context) -> None:
    """Refuse a thread whose finished steps are another sequence's: one thread, one sequence.

    Even with ``--allow-new-settings``, which continues a thread with new
    settings; two sequences mixed in one thread mean nothing.
    """
    if step := first_changed_step(chosen.observations, records, ctx):
        raise ConfigError(
            f"thread {thread!r} holds the steps of another file, or an edited one (step {step} "
            "had another input or target): give another --thread, or drop --thread"
        )


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
    chosen = sequence_of(args)
    if args.truth_free:
        chosen = replace(
            chosen,
            observations=without_lagged_truth(chosen.task, chosen.observations),
            name=f"{chosen.name}-truthfree",
        )
    task, observations = chosen.task, chosen.observations
    # Another task's memory is refused here, before any model loads or file is written.
    ctx, imported = warm_context(context_from_args(args, task), initial_memory_of(args))
    await check_models(ctx)
    # A database that may hold the thread is checked before any model loads (a
    # thread run with other settings is refused at once); a new one is created
    # only once the models loaded and the budget fits, so a refusal leaves no file.
    fresh = not holds_threads(args.db)
    if fresh:
        await load_models(ctx, err)
    async with open_storage(args.db) as (checkpointer, store):
        thread, notice = (
            (args.thread, None)
            if args.thread
            else await default_thread(
                store, f"{chosen.name}-{ctx.feedback}", chosen, ctx, args.budget
            )
        )
        graph = build_graph(checkpointer, store)
        async with holding(leases_of(store), thread):  # refuse a busy thread first
            done = (await graph.aget_state({"configurable": {"thread_id": thread}})).values.get(
                "step", 0
            )
            records = await read_trace(store, thread) if done else []
            # Settings first (they name the cause: another task reads other data), then
            # the data, refused even with --allow-new-settings: one thread, one sequence.
            await check_thread(
                store, thread, ctx, budget=args.budget, allow_new_settings=args.allow_new_settings
            )
            check_data(thread, chosen, records, ctx)
            if done >= len(observations):
                say(notice)
                err.print(
                    f"thread {thread!r} already has {done} steps: nothing to do "
                    "(raise --steps, or use another --thread / --db)"
                )
                say_where(args, thread)
                return 0
            if not fresh:
                await load_models(ctx, err)
            say(notice)  # once the budget fits: a refusal is the one line printed
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
                # a transient bar off a terminal would leave only a blank line behind
                disable=args.json and not out.is_terminal,
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
                        initial_memory=imported,
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
            Panel(
                Text(result.memory),  # as written: "[n1]" is a note id, not rich markup
                title=f"memory after step {result.steps_done}",
                title_align="left",
            )
        )
        out.print(run_summary(records, await structuring(ctx)))
    say_where(args, thread)
    return 0


def say(line: str | None) -> None:
    """Print a line (if any) on stderr, plain (not wrapped: it names a thread to copy)."""
    if line is not None:
        print(line, file=sys.stderr)


def say_where(args: argparse.Namespace, thread: str) -> None:
    """Print the run's last line, ``trace_hint``, plain (no wrapping: it is a command to copy)."""
    print(trace_hint(args.db, thread), file=sys.stderr if args.json else sys.stdout)
