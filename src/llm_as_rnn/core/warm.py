"""Warm start: a new thread whose h_0 is a memory brought from elsewhere.

``--init-memory FILE`` (``run``, ``eval``), ``run_sequence(...,
initial_memory=...)`` and ``OnlineLearner(..., initial_memory=...)`` start a
thread from a memory file (``core.memfile``) or a memory text. The memory is
checked against the task before anything runs (``DataError``: another task,
other sections). The identity holds the hash of the memory *as given*: the
fitted text follows from it, the budget and the predictor's tokenizer, all
three in the identity, and the identity is checked before any model loads,
when no tokenizer can fit it yet; so the identity's hash is the file's own
``sha256``. A memory over the budget is truncated (``core.memory.fit_to_budget``:
the longest sections are cut first, deterministic, no model call) with one
``MemoryFitWarning`` naming the sections cut, and that fitted text is the thread's h_0. A
memory within budget but not in the canonical form every thread memory has
(trailing spaces, CRLF line ends, blank lines) is read as its canonical text,
with one info line, and recorded ``canonicalised``; an export, canonical by
construction, is imported byte for byte.

Where the memory came from is recorded with the thread's first settings
(``record_start``): the store's ``namespaces.imported(thread)``, key ``h0``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import BaseStore

from llm_as_rnn.core.context import Context, path_as_memory
from llm_as_rnn.core.identity import IMPORT_KEY, record_settings, recorded_settings
from llm_as_rnn.core.memfile import MAX_BYTES, MemoryFile, check_for_task, content_hash, parse
from llm_as_rnn.core.memory import cut_sections, fit_to_budget
from llm_as_rnn.errors import ConfigError, DataError, MemoryFitWarning, counted, first_line
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.secrets import redact
from llm_as_rnn.tasks import get_task

log = logging.getLogger("llm_as_rnn")


GIVE = "memory file (`llm-as-rnn memory export --out FILE`) or a text file of the memory"


def read_memory_file(path: str | os.PathLike[str], where: str | None = None) -> MemoryFile:
    """Read a memory file (or a plain memory text), or raise a one-line ``DataError``.

    The one reader of a memory file (``--init-memory``, ``memory edit
    --from-file``). ``where`` names it in errors (default: the path). A file
    over ``MAX_BYTES`` is refused unread. The file's name alone is kept as its
    ``source``: a folder may name a person, a name is enough.
    """
    where = where or os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise DataError(
                f"{where} is over {MAX_BYTES // 2**20} MiB: no memory is that long; give a "
                "memory file (memory export) or a memory text"
            )
        text = data.decode("utf-8-sig")  # a BOM is an editor's, not the memory's
    except UnicodeDecodeError:
        raise DataError(f"{where} is not UTF-8 text: give a memory file or a memory text") from None
    except OSError as exc:
        why = {FileNotFoundError: "no such file", IsADirectoryError: "a folder, not a file"}
        said = why.get(type(exc)) or exc.strerror or first_line(exc)
        raise DataError(f"cannot read {where}: {said}: give a {GIVE}") from None
    return dataclasses.replace(parse(text, where), source=redact(os.path.basename(path)))


def provenance(file: MemoryFile) -> list[str]:
    """Return where a memory file came from, in words: its origin, and whether hand-edited."""
    origin = file.origin
    said = []
    if origin.get("thread") is not None:
        step = f" step {origin['step']}" if origin.get("step") is not None else ""
        said.append(f"origin thread {origin['thread']}{step}")
    if file.edited:
        said.append("edited by hand")
    return said


def warm_context(
    context: Context, given: str | MemoryFile | None
) -> tuple[Context, MemoryFile | None]:
    """Return the context a run starts from with ``given`` as h_0, and the memory file.

    ``given``: a memory text or file (None: the context's own ``initial_memory``,
    if any). Raises ``DataError`` for a memory of another task or other
    sections, ``ConfigError`` when the context already holds another one.
    """
    if given is None:
        if context.initial_memory is None:
            return context, None
        given = context.initial_memory
    if not isinstance(given, str | MemoryFile):
        raise ConfigError(
            f"initial_memory {given!r:.60} is not a memory: give its text or a MemoryFile"
        )
    if isinstance(given, str) and (problem := path_as_memory(given)):
        raise DataError(problem)
    file = MemoryFile(memory=given) if isinstance(given, str) else given
    task = get_task(context.task)
    check_for_task(file, task.name, task.sections)
    if context.initial_memory not in (None, file.memory):
        raise ConfigError(
            "two initial memories: the context's initial_memory and another one; give one"
        )
    return context.model_copy(update={"initial_memory": file.memory}), file


@dataclass(frozen=True)
class WarmStart:
    """A new thread's imported h_0, fitted to its budget."""

    file: MemoryFile
    """The memory as given, and where it came from."""
    h0: str
    """The memory the thread starts from (``file.memory`` fitted to the budget)."""
    tokens: int
    """``h0``'s size in the predictor's tokens."""
    given_tokens: int
    """The given memory's size in the predictor's tokens."""
    budget: int

    @property
    def fitted(self) -> bool:
        """Return whether the given memory was over the budget (and truncated to fit)."""
        return self.given_tokens > self.budget

    @property
    def canonicalised(self) -> bool:
        """Return whether the given memory, within budget, was not in canonical form."""
        return not self.fitted and self.h0 != self.file.memory

    def record(self) -> dict[str, Any]:
        """Return the import's record (``namespaces.imported``, key ``h0``)."""
        return {
            "sha256": content_hash(self.file.memory),
            "origin": self.file.origin,
            "edited": self.file.edited,
            "fitted": self.fitted,
            "canonicalised": self.canonicalised,
            "source": self.file.source,
            "tokens": self.tokens,
        }


async def warm_start(
    context: Context, file: MemoryFile, budget: int, *, say: bool = True
) -> WarmStart:
    """Fit an imported memory to a new thread's budget; say so when it was over, or edited.

    One info line saying where it starts from (``starting from FILE (origin
    thread T step K, N tokens[, truncated][, edited by hand])``), one
    ``MemoryFitWarning`` when the memory is over the budget (it is
    truncated, naming the sections cut; the CLI prints it as a line), one
    info line when it is not canonical (it is canonicalised), one when the
    file was edited by hand (accepted, and recorded so). ``say=False``: none
    (an ``OnlineLearner`` that said them already, at ``memory()``).
    """
    predictor = await aresolve(context.model_for("predictor"), context.endpoint())
    sections = get_task(context.task).sections
    h0 = fit_to_budget(file.memory, sections, budget, predictor.count_tokens)
    start = WarmStart(
        file=file,
        h0=h0,
        tokens=predictor.count_tokens(h0),
        given_tokens=predictor.count_tokens(file.memory),
        budget=budget,
    )
    named = f" ({file.source})" if file.source else ""
    if say:
        about = [
            *provenance(dataclasses.replace(file, edited=False)),
            counted(start.tokens, "token"),
        ]
        about += ["truncated"] * start.fitted + ["edited by hand"] * file.edited
        log.info("info: starting from %s (%s)", file.source or "the given memory", ", ".join(about))
    if say and start.fitted:
        cut = ", ".join(cut_sections(file.memory, h0, sections)) or "spacing only"
        warnings.warn(
            MemoryFitWarning(
                f"the initial memory{named} is {start.given_tokens} tokens, over the budget "
                f"λ={budget}: truncated to {start.tokens} tokens (cut: {cut}; the longest "
                "sections first)"
            ),
            stacklevel=1,  # one place: Python's default filter shows it once, not per call
        )
    if say and start.canonicalised:
        log.info(
            "info: the initial memory%s is not in canonical form (spaces at line ends, CRLF, "
            "blank lines): it starts as its canonical text, sha256 %s",
            named,
            content_hash(h0)[:12],
        )
    if say and file.edited:
        log.info(
            "info: the initial memory%s was edited by hand (it does not match its sha256): "
            "accepted, and recorded as edited",
            named,
        )
    return start


async def first_memory(
    context: Context, file: MemoryFile | None, budget: int, *, say: bool = True
) -> str:
    """Return the memory a new thread starts from: ``file``'s fitted (and said), else h_0's."""
    if file is not None:
        return (await warm_start(context, file, budget, say=say)).h0
    predictor = await aresolve(context.model_for("predictor"), context.endpoint())
    sections = get_task(context.task).sections
    return fit_to_budget(context.h0(), sections, budget, predictor.count_tokens)


async def record_start(
    store: BaseStore | None,
    thread_id: str,
    settings: dict[str, Any],
    imported: dict[str, Any] | None = None,
) -> None:
    """Record a thread's settings and, for a warm start, its import (``WarmStart.record``).

    The import first: killed between the two, the thread has no settings yet,
    so its resume records both again (the same import, under the same key).
    """
    if store is not None and imported is not None:
        await store.aput(namespaces.imported(thread_id), IMPORT_KEY, imported, index=False)
    await record_settings(store, thread_id, settings)


async def new_warm_start(
    store: BaseStore | None,
    thread_id: str,
    context: Context,
    file: MemoryFile | None,
    budget: int,
    *,
    say: bool = True,
) -> dict[str, Any] | None:
    """Return the import record of a warm start on a thread with no recorded settings yet.

    None for a cold start, or a thread that already started (its h_0 is behind
    it: an import does not change it). A thread killed after its first step but
    before its settings were recorded still gets its import recorded.
    """
    if store is None or file is None or await recorded_settings(store, thread_id) is not None:
        return None
    return (await warm_start(context, file, budget, say=say)).record()


async def read_import(store: BaseStore, thread_id: str) -> dict[str, Any] | None:
    """Return where a thread's h_0 came from (``WarmStart.record``), None for a cold start."""
    item = await store.aget(namespaces.imported(thread_id), IMPORT_KEY)
    return None if item is None else dict(item.value)
