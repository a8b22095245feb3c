"""The learned memory as an artefact: ``log``, ``show``, ``diff``, ``export``, ``rewind``, ``edit``.

Each function does what ``llm-as-rnn memory VERB`` does, on a database
location as ``OnlineLearner.open`` takes it (a path, ``sqlite:///``, a
``postgresql://`` URL). Errors are the package's: ``ConfigError`` (no such
thread, a step out of range), ``DataError`` (a memory that does not fit),
``StateError`` (a step under way), ``LeaseError`` (the thread is busy).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from llm_as_rnn.core import history
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.history import Graph, Version
from llm_as_rnn.core.memfile import SIGNATURE, MemoryFile, parse, render
from llm_as_rnn.core.memory import diff_lines
from llm_as_rnn.frontends.cli.memory import export_file, pick
from llm_as_rnn.runtime.paths import READ_DATABASE, Paths, output_file, write_atomic
from llm_as_rnn.runtime.storage import open_storage

T = TypeVar("T")
Db = str | os.PathLike[str]


def _on(db: Db, work: Callable[[Graph], Awaitable[T]], *, read_only: bool = True) -> T:
    async def run() -> T:
        async with open_storage(db, read_only=read_only) as (checkpointer, store):
            return await work(build_graph(checkpointer, store))

    return asyncio.run(run())


async def _versions(graph: Graph, thread: str, all_branches: bool = False) -> list[Version]:
    assert graph.store is not None
    count = await history.predictor_counter(graph.store, thread)
    return await history.versions(graph, thread, count, all_branches=all_branches)


def log(db: Db, thread: str, *, all_branches: bool = False) -> list[Version]:
    """Return a thread's memory versions (h_0, steps, edits, rewinds; old branches too)."""
    return _on(db, lambda g: _versions(g, thread, all_branches))


def show(db: Db, thread: str, step: int | None = None) -> str:
    """Return the memory after ``step`` (None: the current memory)."""
    return _on(db, lambda g: _at(g, thread, step)).memory


async def _at(graph: Graph, thread: str, step: int | None) -> Version:
    return pick(await _versions(graph, thread), step, thread)


def diff(db: Db, thread: str, from_step: int, to_step: int | None = None) -> list[str]:
    """Return the unified line diff between the memories after two steps."""
    return diff_lines(show(db, thread, from_step), show(db, thread, to_step))


def export(db: Db, thread: str, step: int | None = None, out: Db | None = None) -> MemoryFile:
    """Return the portable memory file after ``step``; write it to ``out`` when given.

    An existing ``out`` must be a memory file (``ConfigError`` otherwise, as
    ``memory export --out``): anything else there is someone else's.
    """
    if out is not None:
        paths = Paths()
        paths.add("db", os.fspath(db), READ_DATABASE)
        paths.add("out", os.fspath(out), output_file(SIGNATURE))
        paths.check()

    async def made(graph: Graph) -> MemoryFile:
        return await export_file(graph, thread, await _at(graph, thread, step))

    found = _on(db, made)
    if out is not None:
        write_atomic(out, render(found))
    return found


def rewind(db: Db, thread: str, to_step: int) -> Version:
    """Continue a thread from the memory after ``to_step``; the next run recomputes the rest."""
    return _on(db, lambda g: history.rewind(g, thread, to_step), read_only=False)


def edit(db: Db, thread: str, memory: str | MemoryFile) -> Version:
    """Replace a thread's memory by ``memory`` (a memory file's text, or plain text)."""
    given = memory if isinstance(memory, MemoryFile) else parse(memory, "the memory")
    return _on(db, lambda g: history.edit(g, thread, given), read_only=False)
