"""``llm-as-rnn trace``: list a database's threads, print a thread's steps, or write HTML."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.text import Text

from llm_as_rnn.core.branches import events_of, no_thread, trace_of
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import recorded_settings
from llm_as_rnn.core.rejections import rejections, rejections_line
from llm_as_rnn.core.sequence import read_discards
from llm_as_rnn.core.warm import read_import
from llm_as_rnn.errors import ConfigError, first_line
from llm_as_rnn.frontends.html import discard_line, render_html
from llm_as_rnn.frontends.terminal import event_view, import_line, step_panel, thread_lines
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.paths import write_atomic
from llm_as_rnn.runtime.storage import open_storage


async def trace_command(args: argparse.Namespace) -> int:
    """Print a thread's trace, list threads, or write the HTML page.

    The database is opened read-only: a wrong ``--db`` is refused unchanged.
    """
    async with open_storage(args.db, read_only=True) as (checkpointer, store):
        graph = build_graph(checkpointer, store)
        if args.thread is None:
            spaces = await store.alist_namespaces(prefix=namespaces.TRACES, limit=10_000)
            names = sorted(namespaces.decode(ns[len(namespaces.TRACES)]) for ns in spaces)
            threads = {
                name: (len(await trace_of(graph, name)), await recorded_settings(store, name))
                for name in names
            }
            listing = thread_lines(threads) or [f"no traced threads in {args.db}"]
            print("\n".join(listing))
            return 0
        records = await trace_of(graph, args.thread)
        events = await events_of(graph, args.thread)
        settings = await recorded_settings(store, args.thread)
        discards = await read_discards(store, args.thread)
        imported = await read_import(store, args.thread)
    if not records:
        raise no_thread(args.thread, args.db)
    if args.html:
        try:
            page = render_html(records, args.thread, settings, discards, events, imported)
            write_atomic(args.html, page)
        except OSError as exc:  # a full disk, a folder without write permission
            raise ConfigError(f"cannot write --html {args.html}: {first_line(exc)}") from None
        print(f"wrote {args.html} ({len(records)} steps)", file=sys.stderr)
        return 0
    console = Console()
    # In step order: a discarded step k came before the step k that took its place.
    views: list[tuple[int, int, RenderableType]] = [
        (d["step"], 0, Text(f"discarded {discard_line(d)}")) for d in discards
    ]
    views += [(0, 0, Text(f"h_0 {import_line(imported)}", style="bold"))] if imported else []
    views += [(r["step"], 1, step_panel(r, len(records))) for r in records]
    views += [(ev["after_step"], 2, event_view(ev)) for ev in events]  # events: by time
    for _, _, view in sorted(views, key=lambda view: view[:2]):  # stable
        console.print(view)
    last, edits = records[-1], [ev for ev in events if ev["kind"] == "edit"]
    title, memory = f"memory after step {last['step']}", last["memory_after"]
    if edits and edits[-1]["after_step"] == last["step"]:  # the current memory is a human's
        title, memory = f"{title}, edited by hand", edits[-1].get("memory_after", memory)
    console.print(Panel(Text(memory), title=title, title_align="left"))
    console.print(rejections_line(rejections(records)), markup=False, highlight=False)
    return 0
