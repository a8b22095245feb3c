"""The learned memory as an artefact: ``log``, ``show``, ``diff``, ``export``, ``rewind``, ``edit``.

Each function does what ``llm-as-rnn memory VERB`` does, on a database
location as ``OnlineLearner.open`` takes it (a path, ``sqlite:///``, a
``postgresql://`` URL). Errors are the package's: ``ConfigError`` (a bad
argument, named; no such thread; a step out of range), ``DataError`` (a
memory that does not fit), ``StateError`` (a step under way), ``LeaseError``
(the thread is busy). ``rewind`` and ``edit`` check everything before they
write: a refusal leaves the database as it was (a missing one is not created).
"""

from __future__ import annotations

import asyncio as _asyncio
import os as _os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, ConfigDict, Field

from llm_as_rnn.core import branches as _branches
from llm_as_rnn.core import history as _history
from llm_as_rnn.core.branches import Graph, Version
from llm_as_rnn.core.graph import build_graph as _build_graph
from llm_as_rnn.core.memfile import SIGNATURE as _SIGNATURE
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.memfile import parse as _parse
from llm_as_rnn.core.memfile import render as _render
from llm_as_rnn.core.memory import diff_lines as _diff_lines
from llm_as_rnn.core.state import thread_name as _thread_name
from llm_as_rnn.errors import ConfigError as _ConfigError
from llm_as_rnn.runtime import paths as _paths
from llm_as_rnn.runtime.spec import Checked
from llm_as_rnn.runtime.storage import open_storage as _open_storage

__all__ = ["MemoryFile", "Version", "diff", "edit", "export", "log", "rewind", "show"]

T = TypeVar("T")
Db = str | _os.PathLike[str]


def _location(value: Any) -> str:
    if isinstance(value, _os.PathLike):
        value = _os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ValueError("give a file path, sqlite:///PATH or a postgresql:// URL")
    return value


def _memory(value: Any) -> str | MemoryFile:
    if not isinstance(value, str | MemoryFile):
        raise ValueError("give the memory's text (or a memory file's) or a MemoryFile")
    return value


class _Arguments(Checked):
    """A call's arguments, each checked as its own type: "3", 3.0 and True are no step."""

    model_config = ConfigDict(strict=True, arbitrary_types_allowed=True)
    db: Annotated[Any, AfterValidator(_location)] = None
    thread: Annotated[Any, AfterValidator(_thread_name)] = None
    step: Annotated[int, Field(ge=0)] | None = None
    from_step: Annotated[int, Field(ge=0)] = 0
    to_step: Annotated[int, Field(ge=0)] | None = None
    out: Annotated[Any, AfterValidator(_location)] | None = None
    all_branches: bool = False
    branch: str | None = None
    memory: Annotated[Any, AfterValidator(_memory)] = None


def _checked(**given: Any) -> _Arguments:
    """Return the arguments checked; the first bad one is a ``ConfigError`` naming it."""
    return _Arguments(**given)


def _on(db: str, work: Callable[[Graph], Awaitable[T]]) -> T:
    async def run() -> T:
        async with _open_storage(db, read_only=True) as (checkpointer, store):
            return await work(_build_graph(checkpointer, store))

    return _asyncio.run(run())


def log(db: Db, thread: str, *, all_branches: bool = False) -> list[Version]:
    """Return a thread's memory versions (h_0, steps, edits, rewinds; old branches too)."""
    a = _checked(db=db, thread=thread, all_branches=all_branches)
    return _on(a.db, lambda g: _branches.versions_of(g, a.thread, all_branches=a.all_branches))


def show(db: Db, thread: str, step: int | None = None, *, branch: str | None = None) -> str:
    """Return the memory after ``step`` (None: the latest) of the current or an old ``branch``."""
    a = _checked(db=db, thread=thread, step=step, branch=branch)
    return _on(a.db, lambda g: _at(g, a.thread, a.step, a.branch)).memory


async def _at(graph: Graph, thread: str, step: int | None, branch: str | None) -> Version:
    return _branches.pick(await _branches.versions_of(graph, thread, branch=branch), step, thread)


def diff(
    db: Db, thread: str, from_step: int, to_step: int | None = None, *, branch: str | None = None
) -> list[str]:
    """Return the unified line diff between the memories after two steps (of one branch)."""
    a = _checked(db=db, thread=thread, from_step=from_step, to_step=to_step, branch=branch)
    return _diff_lines(
        show(a.db, a.thread, a.from_step, branch=a.branch),
        show(a.db, a.thread, a.to_step, branch=a.branch),
    )


def export(
    db: Db,
    thread: str,
    step: int | None = None,
    out: Db | None = None,
    *,
    branch: str | None = None,
) -> MemoryFile:
    """Return the portable memory file after ``step``; write it to ``out`` when given.

    An existing ``out`` must be a memory file (``ConfigError`` otherwise, as
    ``memory export --out``): anything else there is someone else's.
    """
    a = _checked(db=db, thread=thread, step=step, out=out, branch=branch)
    if a.out is not None:
        places = _paths.Paths()
        places.add("db", a.db, _paths.READ_DATABASE)
        places.add("out", a.out, _paths.output_file(_SIGNATURE))
        places.check()

    async def made(graph: Graph) -> MemoryFile:
        assert graph.store is not None
        version = await _at(graph, a.thread, a.step, a.branch)
        return await _history.export_file(graph.store, a.thread, version)

    found = _on(a.db, made)
    if a.out is not None:
        _paths.write_atomic(a.out, _render(found))
    return found


def rewind(db: Db, thread: str, to_step: int) -> Version:
    """Continue a thread from the memory after ``to_step``; the next run recomputes the rest."""
    a = _checked(db=db, thread=thread, to_step=to_step)
    if a.to_step is None:  # optional in diff, required here
        raise _ConfigError("to_step None is not a step: give the step to rewind to (0: h_0)")
    step = a.to_step
    return _asyncio.run(
        _history.change(a.db, lambda g, dry: _history.rewind(g, a.thread, step, dry_run=dry))
    )


def edit(db: Db, thread: str, memory: str | MemoryFile) -> Version:
    """Replace a thread's memory by ``memory`` (a memory file's text, or plain text)."""
    a = _checked(db=db, thread=thread, memory=memory)
    given = a.memory if isinstance(a.memory, MemoryFile) else _parse(a.memory, "the memory")
    return _asyncio.run(
        _history.change(a.db, lambda g, dry: _history.edit(g, a.thread, given, dry_run=dry))
    )
