"""``llm-as-rnn memory log|show|diff|export|rewind|edit``: the learned memory as an artefact.

Readers (log, show, diff, export) open the database read-only; rewind and
edit hold the thread's lease (``core.history``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Any

from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.history import (
    Graph,
    Version,
    edit,
    head_of,
    predictor_counter,
    rewind,
    versions,
)
from llm_as_rnn.core.identity import digest, recorded_settings
from llm_as_rnn.core.memfile import SIGNATURE, MemoryFile, parse, render
from llm_as_rnn.core.memory import diff_lines
from llm_as_rnn.errors import ConfigError, DataError, first_line
from llm_as_rnn.evals.records import distribution_metrics
from llm_as_rnn.frontends.cli.flags import Parser, non_negative, thread_name
from llm_as_rnn.runtime.paths import DATABASE, INPUT_FILE, READ_DATABASE, output_file, write_atomic
from llm_as_rnn.runtime.storage import open_storage
from llm_as_rnn.tasks import get_task


def version_line(v: Version) -> str:
    """Return one line of ``memory log``: step, tokens/λ, what made it, correctness, lift."""
    where = f"[{v.branch[-8:]}] " if v.branch else ""  # a checkpoint id begins with its time
    made = {"kept": "rejected", "edit": "human edit", "h0": "h_0"}.get(v.made, v.made)
    if v.record and v.record["rejection_reason"]:
        made += f" ({v.record['rejection_reason']})"
    if v.event and v.event["kind"] == "rewind":
        made += f" from step {v.event.get('from_step')}"
    parts = [f"{where}step {v.step:>4}", f"{v.tokens}/{v.budget} tokens", made]
    record = v.record
    if record is not None:
        right = record["correct"]
        parts.append("right" if right else "wrong" if right is False else "no truth")
        dist = record["prediction"].get("distribution")
        if dist and record["target"] is not None:
            h0 = record["prediction"].get("distribution_h0") or dist
            lift = distribution_metrics(dist, record["target"], h0)["lift_nats"]
            parts.append(f"lift {lift:+.3f} nats")
    return " · ".join(parts)


def pick(found: list[Version], step: int | None, thread: str) -> Version:
    """Return the memory after ``step`` on the current branch (None: the latest)."""
    current = [v for v in found if v.branch is None]
    if step is None:
        return current[-1]
    at = [v for v in current if v.step == step]
    if not at:
        raise ConfigError(
            f"thread {thread!r} has no step {step}: give a step from 0 to {current[-1].step}"
        )
    return at[-1]


async def memory_command(args: argparse.Namespace) -> int:
    """Run one ``memory`` verb."""
    verb = args.verb
    if verb == "export" and args.format == "text" and args.out is not None:
        raise ConfigError(
            "--format text prints the memory alone to stdout: redirect it (> FILE), or drop "
            "--format text to write a memory file to --out"
        )
    read_only = verb not in ("rewind", "edit")
    given = await _given(args) if verb == "edit" else None  # before the lease is taken
    async with open_storage(args.db, read_only=read_only) as (checkpointer, store):
        graph = build_graph(checkpointer, store)
        if verb == "rewind":
            done = await rewind(graph, args.thread, args.to_step)
            print(f"rewound {args.thread!r}: {version_line(done)}")
            return 0
        if verb == "edit":
            assert given is not None
            print(f"edited {args.thread!r}: {version_line(await edit(graph, args.thread, given))}")
            return 0
        count = await predictor_counter(store, args.thread)
        found = await versions(graph, args.thread, count, all_branches=verb == "log" and args.all)
        if verb == "log":
            print("\n".join(version_line(v) for v in found))
        elif verb == "show":
            print(pick(found, args.step, args.thread).memory)
        elif verb == "diff":
            before = pick(found, args.from_step, args.thread).memory
            after = pick(found, args.to_step, args.thread).memory
            _print_diff(diff_lines(before, after))
        else:
            await _export(graph, args, pick(found, args.step, args.thread))
    return 0


def _print_diff(lines: list[str]) -> None:
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for line in lines or ["(no difference)"]:
        code = {"+": "32", "-": "31", "@": "2"}.get(line[:1]) if colour else None
        print(f"\x1b[{code}m{line}\x1b[0m" if code else line)


async def export_file(graph: Graph, thread: str, version: Version) -> MemoryFile:
    """Return the portable memory file of one of a thread's versions."""
    assert graph.store is not None
    settings = await recorded_settings(graph.store, thread) or {}
    task = get_task(settings["task"]["name"])
    predictor = settings["models"]["predictor"]
    return MemoryFile(
        memory=version.memory,
        task=task.name,
        sections=tuple(task.sections),
        budget=version.budget,
        tokenizer=predictor.get("tokenizer") or f"{predictor['kind']}:{predictor['name']}",
        tokens=version.tokens,
        origin={"thread": thread, "step": version.step, "settings": digest(settings)},
    )


async def _export(graph: Graph, args: argparse.Namespace, version: Version) -> None:
    made = await export_file(graph, args.thread, version)
    text = render(made) if args.format == "json" else made.memory + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        write_atomic(args.out, text)
    except OSError as exc:
        raise ConfigError(f"cannot write --out {args.out}: {first_line(exc)}") from None
    print(f"wrote {args.out} (step {version.step}, {version.tokens} tokens)", file=sys.stderr)


async def _given(args: argparse.Namespace) -> MemoryFile:
    """Return the memory an edit brings: ``--from-file``, else what ``$EDITOR`` saved."""
    if args.from_file is not None:
        try:
            with open(args.from_file, encoding="utf-8") as handle:
                return parse(handle.read(), f"--from-file {args.from_file}")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"cannot read --from-file {args.from_file}: {first_line(exc)}"
            ) from None
    return parse(await _edited(args), "the edited memory")


async def _edited(args: argparse.Namespace) -> str:
    """Return the memory as the user's ``$VISUAL``/``$EDITOR`` saved it (a non-zero exit: none)."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise ConfigError("no $EDITOR set: set EDITOR (or VISUAL), or give --from-file FILE")
    async with open_storage(args.db, read_only=True) as (checkpointer, store):
        head = await head_of(build_graph(checkpointer, store), args.thread, finished=True)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "memory.md")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(head.values["memory"])
        try:
            code = subprocess.call([*shlex.split(editor), path])
        except OSError as exc:
            raise ConfigError(f"cannot run $EDITOR {editor!r}: {first_line(exc)}") from None
        if code != 0:
            raise ConfigError(f"$EDITOR exited with {code}: nothing changed")
        with open(path, encoding="utf-8") as handle:
            return handle.read()


def add_memory_parser(commands: Any) -> Parser:
    """Add the ``memory`` command and its verbs (``Parser.verbs``) to ``commands``."""
    memory: Parser = commands.add_parser(
        "memory",
        help="the learned memory: log, show, diff, export, rewind, edit",
        description="Work with a thread's learned memory: list its versions, show, diff or "
        "export one, rewind the thread to a past step, or correct the memory by hand.",
    )
    verbs = memory.add_subparsers(dest="verb", required=True, parser_class=Parser)
    helps = {
        "log": "one line per memory version (--all: old branches too)",
        "show": "print the memory (after --step K)",
        "diff": "diff the memories after --from A and --to B",
        "export": "write a portable memory file (--format text: the memory alone)",
        "rewind": "continue the thread from the memory after --to-step K",
        "edit": "replace the memory by a human's (--from-file, else $EDITOR)",
    }
    memory.verbs = {}
    for verb, text in helps.items():
        sub: Parser = verbs.add_parser(verb, help=text, description=text)
        sub.add_argument("--thread", type=thread_name, required=True, help="thread id")
        writes = verb in ("rewind", "edit")
        sub.add_argument(
            "--db",
            default="llm-as-rnn.db",
            path=DATABASE if writes else READ_DATABASE,
            help="SQLite database (llm-as-rnn.db)" + ("" if writes else ", opened read-only"),
        )
        memory.verbs[verb] = sub
    v = memory.verbs
    v["log"].add_argument("--all", action="store_true", help="list old branches too")
    for verb in ("show", "export"):
        v[verb].add_argument("--step", type=non_negative, default=None, help="after step K")
    v["diff"].add_argument("--from", dest="from_step", type=non_negative, required=True)
    v["diff"].add_argument("--to", dest="to_step", type=non_negative, default=None)
    v["export"].add_argument("--format", choices=("json", "text"), default="json")
    v["export"].add_argument(
        "--out",
        default=None,
        path=output_file(SIGNATURE),
        help="write the memory file here (else stdout); an existing file must be a memory file",
    )
    v["rewind"].add_argument("--to-step", type=non_negative, required=True, help="step K")
    v["edit"].add_argument("--from-file", default=None, path=INPUT_FILE, help="memory file or text")
    return memory
