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

from llm_as_rnn.core.branches import Graph, Version, head_of, pick, versions_of
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.history import change, edit, export_file, rewind
from llm_as_rnn.core.memfile import SIGNATURE, MemoryFile, render
from llm_as_rnn.core.memory import diff_lines
from llm_as_rnn.core.rejections import rejection_text
from llm_as_rnn.core.warm import read_memory_file
from llm_as_rnn.errors import ConfigError, first_line
from llm_as_rnn.evals.records import distribution_metrics
from llm_as_rnn.frontends.cli.flags import Parser, non_negative, thread_name
from llm_as_rnn.frontends.terminal import import_line
from llm_as_rnn.runtime.paths import DATABASE, INPUT_FILE, READ_DATABASE, output_file, write_atomic
from llm_as_rnn.runtime.storage import open_storage


def version_line(v: Version) -> str:
    """Return one line of ``memory log``: step, tokens/λ, what made it, correctness, lift."""
    where = f"[{v.branch}] " if v.branch else ""
    made = {"kept": "rejected", "edit": "human edit", "h0": "h_0"}.get(v.made, v.made)
    if v.record and (rejected := rejection_text(v.record)):
        made += f" ({rejected})"
    if v.imported:
        made += f" ({import_line(v.imported)})"
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


async def memory_command(args: argparse.Namespace) -> int:
    """Run one ``memory`` verb.

    Readers open the database read-only; rewind and edit check everything
    read-only first (``history.change``): a refusal writes nothing.
    """
    verb = args.verb
    if verb == "export" and args.format == "text" and args.out is not None:
        raise ConfigError(
            "--format text prints the memory alone to stdout: redirect it (> FILE), or drop "
            "--format text to write a memory file to --out"
        )
    async with open_storage(args.db, read_only=True) as (checkpointer, store):
        graph = build_graph(checkpointer, store)
        await head_of(graph, args.thread, db=args.db)  # one message for an unknown thread
        if verb not in ("rewind", "edit"):
            await _read(graph, args)
            return 0
    if verb == "rewind":
        done = await change(
            args.db, lambda g, dry: rewind(g, args.thread, args.to_step, dry_run=dry)
        )
        k = done.step
        print(
            f"rewound {args.thread!r} to the memory after step {k}: the next `run` recomputes "
            f"steps {k + 1}.. (`memory log --all` lists the old ones)\n{version_line(done)}"
        )
        return 0
    given = await _given(args)  # before the lease is taken
    done = await change(args.db, lambda g, dry: edit(g, args.thread, given, dry_run=dry))
    print(f"edited {args.thread!r}: {version_line(done)}")
    return 0


async def _read(graph: Graph, args: argparse.Namespace) -> None:
    branch = getattr(args, "branch", None)
    found = await versions_of(
        graph, args.thread, all_branches=args.verb == "log" and args.all, branch=branch
    )
    if args.verb == "log":
        print("\n".join(version_line(v) for v in found))
    elif args.verb == "show":
        print(pick(found, args.step, args.thread).memory)
    elif args.verb == "diff":
        before = pick(found, args.from_step, args.thread).memory
        after = pick(found, args.to_step, args.thread).memory
        _print_diff(diff_lines(before, after))
    else:
        await _export(graph, args, pick(found, args.step, args.thread))


def _print_diff(lines: list[str]) -> None:
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for line in lines or ["(no difference)"]:
        code = {"+": "32", "-": "31", "@": "2"}.get(line[:1]) if colour else None
        print(f"\x1b[{code}m{line}\x1b[0m" if code else line)


async def _export(graph: Graph, args: argparse.Namespace, version: Version) -> None:
    assert graph.store is not None
    made = await export_file(graph.store, args.thread, version)
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
        return read_memory_file(args.from_file, f"--from-file {args.from_file}")
    return await _edited(args)


async def _edited(args: argparse.Namespace) -> MemoryFile:
    """Return the memory as the user's ``$VISUAL``/``$EDITOR`` saved it (a non-zero exit: none)."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise ConfigError("no $EDITOR set: set EDITOR (or VISUAL), or give --from-file FILE")
    async with open_storage(args.db, read_only=True) as (checkpointer, store):
        head = await head_of(
            build_graph(checkpointer, store), args.thread, finished=True, db=args.db
        )
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
        return read_memory_file(path, "the edited memory")


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
        "show": "print the memory (after --step K; of an old --branch ID)",
        "diff": "diff the memories after --from A and --to B (of an old --branch ID)",
        "export": "write a portable memory file (--format text: the memory alone)",
        "rewind": "continue the thread from the memory after --to-step K (the next run "
        "recomputes steps K+1..; log --all lists the old ones)",
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
        v[verb].add_argument(
            "--step",
            type=non_negative,
            default=None,
            help="the memory after step K (0: h_0; default: the current memory)",
        )
    for verb in ("show", "diff", "export"):
        v[verb].add_argument(
            "--branch",
            default=None,
            help="read an old branch: its id as `memory log --all` "
            "prints it (default: the current branch)",
        )
    v["diff"].add_argument(
        "--from", dest="from_step", type=non_negative, required=True, help="the memory after step A"
    )
    v["diff"].add_argument(
        "--to",
        dest="to_step",
        type=non_negative,
        default=None,
        help="the memory after step B (default: the current memory)",
    )
    v["export"].add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json: a portable memory file (default); text: the memory alone, for a prompt",
    )
    v["export"].add_argument(
        "--out",
        default=None,
        path=output_file(SIGNATURE),
        help="write the memory file here (else stdout); an existing file must be a memory file",
    )
    v["rewind"].add_argument(
        "--to-step",
        type=non_negative,
        required=True,
        help="K: keep steps 1..K and the memory after step K (0: h_0); later steps are redone",
    )
    v["edit"].add_argument("--from-file", default=None, path=INPUT_FILE, help="memory file or text")
    return memory
