"""Rewind and edit a thread's memory: LangGraph time travel, recorded as ``MemoryEvent``s.

A rewind or a human edit writes one new checkpoint (``aupdate_state``) whose ``event``
state field says what made it: atomic with the memory it sets, and shown by Studio with
the state. No row is deleted from the checkpointer; the next step clears ``event``. The
readers (versions, events, every branch) are in ``core.branches``.

Both first check everything read-only (``dry_run``: no lease, nothing written), so a
refusal leaves the database byte for byte as it was; ``change`` runs that check before it
opens a database for writing.

The trace store is not atomic with the checkpointer, so a rewind to step K takes three moves:
(1) copy records after K to ``namespaces.branch(thread, old head id)`` and clear the call
journal, (2) commit the fork checkpoint, (3) delete those records from the trace. Killed
before (2): the old head and trace (a retry overwrites the copy). Killed before (3): readers
drop records after K (``visible``); the next writer finishes (3) (``settle``). The checkpoint
commits first because it is the truth every reader and every resume starts from: deleting
first would leave, when killed, a head at step N over a trace ending at K. The kill tests
stop a command between the moves (``pause``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from langgraph.store.base import BaseStore, PutOp

from llm_as_rnn.core.branches import (
    Graph,
    Version,
    checkpoint_id,
    config_of,
    head_of,
    lineage,
    predictor_counter,
    tree_of,
)
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import digest, recorded_settings
from llm_as_rnn.core.memfile import MemoryFile, canonical, check_for_task, tokenizer_of
from llm_as_rnn.core.state import MemoryEvent
from llm_as_rnn.core.warm import read_import
from llm_as_rnn.errors import ConfigError, DataError
from llm_as_rnn.runtime import journal, namespaces, pause
from llm_as_rnn.runtime.leases import holding
from llm_as_rnn.runtime.storage import leases_of, open_storage, read_records
from llm_as_rnn.tasks import get_task

T = TypeVar("T")


async def settle(graph: Graph, thread: str) -> None:
    """Finish a rewind cut short (move 3): drop the trace's records after its step.

    Call it holding the thread's lease, before reading or writing the trace.
    """
    if graph.store is None:
        return
    head = await graph.aget_state(config_of(thread))
    event = head.values.get("event") if head.values else None
    if not event or event["kind"] != "rewind":
        return
    space = namespaces.trace(thread)
    late = [r for r in await read_records(graph.store, space) if r["step"] > event["after_step"]]
    await graph.store.abatch([PutOp(space, f"{r['step']:06d}", None) for r in late])


async def change(db: str | os.PathLike[str], work: Callable[[Graph, bool], Awaitable[T]]) -> T:
    """Run a rewind or an edit on a database: ``work(graph, dry_run=True)`` read-only first.

    A missing database, an unknown thread, a bad step or memory is refused
    before the database is opened for writing: nothing is created or written.
    """
    async with open_storage(db, read_only=True) as (checkpointer, store):
        await work(build_graph(checkpointer, store), True)
    async with open_storage(db) as (checkpointer, store):
        return await work(build_graph(checkpointer, store), False)


@contextlib.asynccontextmanager
async def _guard(graph: Graph, thread: str, dry_run: bool) -> AsyncIterator[None]:
    """Hold the thread's lease and finish a rewind cut short first (nothing for a dry run)."""
    assert graph.store is not None
    if dry_run:
        yield
        return
    async with holding(leases_of(graph.store), thread):
        await settle(graph, thread)
        yield


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def rewind(graph: Graph, thread: str, step: int, *, dry_run: bool = False) -> Version:
    """Fork a thread from the checkpoint after ``step``: the next run recomputes the rest.

    Step 0 goes back to h_0 (a memory poisoned by step 1): a fork of the first
    checkpoint with no finished step and the memory step 1 started from. Holds
    the thread's lease. Raises ``ConfigError`` (no such thread, a step out of
    range), ``StateError`` (a step under way), ``LeaseError`` (busy).
    ``dry_run``: check and return the version it would make, write nothing.
    """
    store = graph.store
    assert store is not None
    async with _guard(graph, thread, dry_run):
        head = await head_of(graph, thread, finished=True)
        reached = int(head.values["step"])
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < reached:
            raise ConfigError(
                f"cannot rewind thread {thread!r} to step {step!r}: it is at step {reached}; "
                + (f"give a step from 0 to {reached - 1}" if reached else "nothing to rewind")
            )
        chain = [s for s in lineage(await tree_of(graph, thread), head) if not s.next]
        records = await read_records(store, namespaces.trace(thread))
        branch = checkpoint_id(head)
        event = MemoryEvent(
            kind="rewind", id=uuid.uuid4().hex, after_step=step, at=_now(), from_step=reached
        ) | {"branch": branch}
        update: dict[str, Any] = {"event": event}
        if step:
            base = [s for s in chain if s.values.get("step") == step][-1]
            memory = base.values["memory"]
            tokens = next(r["memory_tokens"] for r in records if r["step"] == step)
        else:  # h_0: what step 1 started from (fitted to the budget, or imported)
            base, memory = chain[0], next(r["memory_before"] for r in records if r["step"] == 1)
            tokens = (await predictor_counter(store, thread))(memory)
            update |= {"step": 0, "memory": memory, "usage": {}, "step_usage": {}}
            update |= dict.fromkeys(("last_step", "current", "prediction", "feedback"))
        made = Version(step, memory, "rewind", int(base.values["budget"]), tokens, event=event)
        if dry_run:
            return made
        old = [r for r in records if r["step"] > step]
        await store.abatch(  # move 1: the old branch's records, under its name
            [PutOp(namespaces.branch(thread, branch), f"{r['step']:06d}", dict(r)) for r in old]
        )
        await journal.clear(store, thread)  # its calls are not the new branch's
        pause.at("rewind-moved")
        await graph.aupdate_state(base.config, update, as_node="rewrite")  # move 2: commit
        pause.at("rewind-forked")
        await settle(graph, thread)  # move 3
        return made


async def edit(graph: Graph, thread: str, given: MemoryFile, *, dry_run: bool = False) -> Version:
    """Replace a thread's memory by a human's, recorded as an edit with what it replaced.

    Checked like a rewrite (``memfile.check_for_task``: the task's shape; within
    the thread's budget in its predictor's tokens), and stored ``canonical``; a
    memory canonically equal to the current one is no edit. Else ``DataError``
    and nothing written. Holds the thread's lease; ``ConfigError``/
    ``StateError``/``LeaseError`` as ``rewind``; ``dry_run`` as ``rewind``.
    """
    store = graph.store
    assert store is not None
    async with _guard(graph, thread, dry_run):
        head = await head_of(graph, thread, finished=True)
        settings = await recorded_settings(store, thread) or {}
        task = get_task(settings["task"]["name"])
        memory = check_for_task(given, task.name, task.sections).memory
        count = await predictor_counter(store, thread)
        budget, tokens = int(head.values["budget"]), count(memory)
        if tokens > budget:
            raise DataError(
                f"the memory is {tokens} tokens, over the budget of thread {thread!r} "
                f"(λ={budget} tokens): shorten it"
            )
        before = head.values["memory"]
        if memory == canonical(before, task.sections):
            raise DataError("the memory is unchanged: nothing to record")
        step = int(head.values["step"])
        event = MemoryEvent(kind="edit", id=uuid.uuid4().hex, after_step=step, at=_now())
        event["memory_before"], event["memory_after"] = before, memory
        made = Version(step, memory, "edit", budget, tokens, event=event)
        if dry_run:
            return made
        pause.at("edit-checked")
        await graph.aupdate_state(head.config, {"memory": memory, "event": event}, "rewrite")
        pause.at("edit-written")
        return made


async def export_file(store: BaseStore, thread: str, version: Version) -> MemoryFile:
    """Return the portable memory file of one of a thread's memory versions.

    The one way a memory leaves its thread (``memory export``, an eval's trained
    memory): task and sections, λ and the tokenizer from the thread's recorded
    settings, and an origin that keeps the chain back to a warm start's file.
    """
    settings = await recorded_settings(store, thread) or {}
    task = get_task(settings["task"]["name"])
    origin: dict[str, Any] = {"thread": thread, "step": version.step, "settings": digest(settings)}
    imported = await read_import(store, thread)
    if imported and imported.get("origin"):  # the chain back to where h_0 was learned
        origin["imported_from"] = imported["origin"]
    return MemoryFile(
        memory=version.memory,
        task=task.name,
        sections=tuple(task.sections),
        budget=version.budget,
        tokenizer=tokenizer_of(settings["models"]["predictor"]),
        tokens=version.tokens,
        origin=origin,
    )
