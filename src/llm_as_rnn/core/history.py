"""A thread's memory versions, read from LangGraph's checkpoint history; rewind and edit.

The checkpoint is the source of truth. A rewind or a human edit writes one new checkpoint
(``aupdate_state``, LangGraph time travel) whose ``event`` state field (a ``MemoryEvent``)
says what made it: atomic with the memory it sets, and shown by Studio with the state. No
row is deleted from the checkpointer; the next step clears ``event``.

Versions (``versions``): h_0 (``h0``, or ``import`` for a warm start), one per finished step
(what its record's ``enforcement`` says), one per edit and one per rewind, in the order of
the head's lineage (parent links), so an abandoned branch is not mixed in. ``all_branches``
adds each old branch a rewind left, from its own lineage.

The trace store is not atomic with the checkpointer, so a rewind to step K takes three moves:
(1) copy records after K to ``namespaces.branch(thread, old head id)`` and clear the call
journal, (2) commit the fork checkpoint, (3) delete those records from the trace. Killed
before (2): the old head and trace (a retry overwrites the copy). Killed before (3): readers
drop records after K (``visible``); the next writer finishes (3) (``settle``). The kill tests
stop a command between the moves (``pause``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore, PutOp
from langgraph.types import StateSnapshot

from llm_as_rnn.core.identity import recorded_settings
from llm_as_rnn.core.memfile import MemoryFile, check_for_task
from llm_as_rnn.core.memory import TokenCounter
from llm_as_rnn.core.state import MemoryEvent, StepRecord
from llm_as_rnn.errors import ConfigError, DataError, StateError
from llm_as_rnn.runtime import journal, namespaces, pause
from llm_as_rnn.runtime.leases import holding
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.spec import Endpoint, ModelSpec
from llm_as_rnn.runtime.storage import leases_of, read_records
from llm_as_rnn.tasks import get_task

Graph = CompiledStateGraph[Any, Any, Any, Any]


@dataclass(frozen=True)
class Version:
    """One version of a thread's memory."""

    step: int
    """It is the memory after this step (0: h_0)."""
    memory: str
    made: str
    """What made it: ``h0``, ``import``, a step's enforcement (``rewrite``,
    ``compress``, ``truncate``, ``evict``, ``skipped``, ``kept``: the rewrite
    was rejected), ``edit`` (by a human) or ``rewind``."""
    budget: int
    tokens: int
    record: StepRecord | None = None
    """The step's record (correctness, prediction) for a step's version."""
    event: MemoryEvent | None = None
    """The rewind or edit that made it."""
    branch: str | None = None
    """None on the thread's current branch; else the old branch a rewind left."""


def config_of(thread: str, checkpoint_id: str | None = None) -> RunnableConfig:
    """Return the config of a thread (at one checkpoint, when given)."""
    configurable = {"thread_id": thread, "checkpoint_ns": ""}
    configurable |= {"checkpoint_id": checkpoint_id} if checkpoint_id is not None else {}
    return {"configurable": configurable, "recursion_limit": 32}


def checkpoint_id(snapshot: StateSnapshot) -> str:
    """Return a snapshot's checkpoint id."""
    return str(snapshot.config["configurable"]["checkpoint_id"])


async def head_of(graph: Graph, thread: str, *, finished: bool = False) -> StateSnapshot:
    """Return a thread's latest checkpoint, or raise (``ConfigError``: no such thread).

    ``finished``: refuse (``StateError``) a thread with a step under way.
    """
    head = await graph.aget_state(config_of(thread))
    if not head.values.get("step") and not head.values.get("event"):  # a rewind to h_0 has one
        raise ConfigError(
            f"thread {thread!r} has no finished step in this database: check --thread and "
            "--db (`llm-as-rnn trace --db DB` lists the threads)"
        )
    if finished and head.next:
        raise StateError(
            f"thread {thread!r} has an unfinished step {head.values['step'] + 1}: finish it "
            "first (run the same command again, or OnlineLearner.learn/discard)"
        )
    return head


async def lineage(graph: Graph, head: StateSnapshot) -> list[StateSnapshot]:
    """Return the checkpoints from a thread's first to ``head``, following parent links."""
    thread = head.config["configurable"]["thread_id"]
    by_id = {
        checkpoint_id(s): s async for s in graph.aget_state_history(config_of(thread))
    }  # every branch's checkpoints: the walk keeps this one's
    chain: list[StateSnapshot] = []
    at: StateSnapshot | None = by_id.get(checkpoint_id(head), head)
    while at is not None:
        chain.append(at)
        parent = (at.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        at = by_id.get(parent) if parent else None
    return chain[::-1]


def visible(head: StateSnapshot, records: list[StepRecord]) -> list[StepRecord]:
    """Return the records of the head's branch (a rewind's old records not yet moved dropped)."""
    event = head.values.get("event")
    if event and event["kind"] == "rewind":
        return [r for r in records if r["step"] <= event["after_step"]]
    return records


async def trace_of(graph: Graph, thread: str) -> list[StepRecord]:
    """Return the step records of a thread's current branch."""
    assert graph.store is not None
    head = await graph.aget_state(config_of(thread))
    return visible(head, await read_records(graph.store, namespaces.trace(thread)))


async def events_of(graph: Graph, thread: str) -> list[MemoryEvent]:
    """Return the rewinds and edits on a thread's current branch, oldest first."""
    head = await graph.aget_state(config_of(thread))
    if not head.values:
        return []
    return list(_events(await lineage(graph, head)).values())


def _events(chain: list[StateSnapshot]) -> dict[str, MemoryEvent]:
    found: dict[str, MemoryEvent] = {}
    for snapshot in chain:
        event = snapshot.values.get("event")
        if event and event["id"] not in found:
            found[event["id"]] = event
    return found


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


async def versions(
    graph: Graph, thread: str, count: TokenCounter, *, all_branches: bool = False
) -> list[Version]:
    """Return a thread's memory versions: its current branch, then (``all_branches``) old ones."""
    assert graph.store is not None
    head = await head_of(graph, thread)
    records = await read_records(graph.store, namespaces.trace(thread))
    chain = await lineage(graph, head)
    h0 = head.values["memory"] if not head.values["step"] else ""  # rewound to h_0: no record
    out = [await _h0(graph.store, thread, records, count, h0)]
    out += _walk(chain, {r["step"]: r for r in visible(head, records)}, count, None, -1)
    if all_branches:
        out += await _old_branches(graph, thread, chain, records, count)
    return out


async def _old_branches(
    graph: Graph,
    thread: str,
    chain: list[StateSnapshot],
    records: list[StepRecord],
    count: TokenCounter,
) -> list[Version]:
    assert graph.store is not None
    out: list[Version] = []
    for event in _events(chain).values():
        if event["kind"] != "rewind":
            continue
        branch, after = event["branch"], event["after_step"]
        old = await graph.aget_state(config_of(thread, branch))
        moved = await read_records(graph.store, namespaces.branch(thread, branch))
        steps = {r["step"]: r for r in records if r["step"] <= after}
        steps.update({r["step"]: r for r in moved})
        out += _walk(await lineage(graph, old), steps, count, branch, after)
    return out


async def _h0(
    store: BaseStore, thread: str, records: list[StepRecord], count: TokenCounter, h0: str
) -> Version:
    first = next(r for r in records if r["step"] == 1) if records else None
    memory = first["memory_before"] if first else h0
    settings = await recorded_settings(store, thread) or {}
    imported = await store.aget(namespaces.imported(thread), "h0")
    made = "import" if imported or settings.get("initial_memory") else "h0"
    budget = first["budget"] if first else int(settings.get("budget") or 0)
    return Version(0, memory, made, budget, count(memory))


def _walk(
    chain: list[StateSnapshot],
    records: dict[int, StepRecord],
    count: TokenCounter,
    branch: str | None,
    after: int,
) -> list[Version]:
    """Return the versions a lineage made after step ``after`` (-1: a rewind to h_0 too)."""
    out: list[Version] = []
    seen: set[str] = set()
    last = 0
    for snapshot in chain:
        values = snapshot.values
        step, event = int(values.get("step") or 0), values.get("event")
        if snapshot.next or not (step or event):  # a rewind to h_0 has step 0
            continue
        memory, budget = values.get("memory", ""), int(values.get("budget") or 0)
        if event and event["id"] not in seen:
            seen.add(event["id"])
            made, record = event["kind"], None
            if made == "rewind":  # a fork of step 1's checkpoint (to h_0) has it as parent
                out = [v for v in out if v.step <= step]
        elif step != last and (record := records.get(step)) is not None:
            made = record["enforcement"]
        else:  # a copy of the previous checkpoint (a dropped unfinished step)
            continue
        last = step
        if step > after:
            tokens = record["memory_tokens"] if record else count(memory)
            out.append(Version(step, memory, made, budget, tokens, record, event, branch))
    return out


async def predictor_counter(store: BaseStore, thread: str) -> TokenCounter:
    """Return the token counter of a thread's predictor, from its recorded settings.

    The recorded identity is enough to resolve it again (no ``--model``); a
    chat model object cannot be rebuilt from it: ``ConfigError``.
    """
    settings = await recorded_settings(store, thread)
    if settings is None:
        raise ConfigError(f"thread {thread!r} has no recorded settings: run a step first")
    found = settings["models"]["predictor"]
    if found.get("kind") == "instance":
        raise ConfigError(
            f"thread {thread!r} was run with a chat model object, which cannot be rebuilt "
            "from the database: edit it through the Python API of your application"
        )
    spec = ModelSpec(
        found["kind"], found["name"], found.get("gguf_file"), long_memories=found["long_memories"]
    )
    endpoint = Endpoint(found.get("endpoint"), tokenizer=found.get("tokenizer"))
    return (await aresolve(spec, endpoint)).count_tokens


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def rewind(graph: Graph, thread: str, step: int) -> Version:
    """Fork a thread from the checkpoint after ``step``: the next run recomputes the rest.

    Step 0 goes back to h_0 (a memory poisoned by step 1): a fork of the first
    checkpoint with no finished step and the memory step 1 started from. Holds
    the thread's lease. Raises ``ConfigError`` (no such thread, a step out of
    range), ``StateError`` (a step under way), ``LeaseError`` (busy).
    """
    store = graph.store
    assert store is not None
    async with holding(leases_of(store), thread):
        await settle(graph, thread)
        head = await head_of(graph, thread, finished=True)
        reached = int(head.values["step"])
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < reached:
            raise ConfigError(
                f"cannot rewind thread {thread!r} to step {step!r}: it is at step {reached}; "
                + (f"give a step from 0 to {reached - 1}" if reached else "nothing to rewind")
            )
        chain = [s for s in await lineage(graph, head) if not s.next]
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
        old = [r for r in records if r["step"] > step]
        await store.abatch(  # move 1: the old branch's records, under its name
            [PutOp(namespaces.branch(thread, branch), f"{r['step']:06d}", dict(r)) for r in old]
        )
        await journal.clear(store, thread)  # its calls are not the new branch's
        pause.at("rewind-moved")
        await graph.aupdate_state(base.config, update, as_node="rewrite")  # move 2: commit
        pause.at("rewind-forked")
        await settle(graph, thread)  # move 3
        return Version(step, memory, "rewind", int(base.values["budget"]), tokens, event=event)


async def edit(graph: Graph, thread: str, given: MemoryFile) -> Version:
    """Replace a thread's memory by a human's, recorded as an edit with what it replaced.

    Checked like a rewrite: the task's sections, nothing foreign, within the
    thread's budget in its predictor's tokens; else ``DataError`` and nothing
    written. Holds the thread's lease; ``ConfigError``/``StateError``/
    ``LeaseError`` as ``rewind``.
    """
    store = graph.store
    assert store is not None
    async with holding(leases_of(store), thread):
        await settle(graph, thread)
        head = await head_of(graph, thread, finished=True)
        settings = await recorded_settings(store, thread) or {}
        task = get_task(settings["task"]["name"])
        check_for_task(given, task.name, task.sections)
        count = await predictor_counter(store, thread)
        budget, tokens = int(head.values["budget"]), count(given.memory)
        if tokens > budget:
            raise DataError(
                f"the memory is {tokens} tokens, over thread {thread!r}'s budget of {budget}: "
                "shorten it"
            )
        before = head.values["memory"]
        if given.memory == before:
            raise DataError("the memory is unchanged: nothing to record")
        step = int(head.values["step"])
        event = MemoryEvent(kind="edit", id=uuid.uuid4().hex, after_step=step, at=_now())
        event["memory_before"], event["memory_after"] = before, given.memory
        pause.at("edit-checked")
        await graph.aupdate_state(head.config, {"memory": given.memory, "event": event}, "rewrite")
        pause.at("edit-written")
        return Version(step, given.memory, "edit", budget, tokens, event=event)
