"""A thread's memory versions and human acts, read from every branch of its checkpoint history.

The checkpoint is the source of truth. A rewind or a human edit writes one new checkpoint
(``core.history``) whose ``event`` state field (a ``MemoryEvent``) says what made it. No row
is deleted, so every branch stays readable: the readers here walk *all* of a thread's
checkpoints (a tree, by parent links), not only the head's lineage.

Versions (``versions``): h_0 (``h0``, or ``import`` for a warm start), one per finished step
(what its record's ``enforcement`` says), one per edit and one per rewind, in the order of
the head's lineage. ``all_branches`` adds each old branch once: the checkpoints of the
lineage a rewind left that no later branch shows (its steps after the rewind's step, with
the records the rewind kept under ``namespaces.branch``), newest rewind first because a
later branch shares its older steps. An old branch is named by ``short_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import StateSnapshot

from llm_as_rnn.core.identity import recorded_settings
from llm_as_rnn.core.memory import TokenCounter
from llm_as_rnn.core.state import MemoryEvent, StepRecord
from llm_as_rnn.errors import ConfigError, StateError
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.spec import Endpoint, ModelSpec
from llm_as_rnn.runtime.storage import read_records

Graph = CompiledStateGraph[Any, Any, Any, Any]
Tree = dict[str, StateSnapshot]
"""Every checkpoint of a thread, by checkpoint id."""


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
    """None on the thread's current branch; else the old branch's ``short_id``."""
    checkpoint: str | None = None
    """The checkpoint holding it (None: h_0 before the first step)."""
    imported: dict[str, Any] | None = None
    """A warm start's h_0: where it came from (``core.warm.WarmStart.record``)."""


def short_id(checkpoint: str) -> str:
    """Return the name of an old branch: its last checkpoint id's last 8 hex digits.

    A checkpoint id begins with its time, so the end is what tells two apart.
    """
    return checkpoint.replace("-", "")[-8:]


def config_of(thread: str, checkpoint_id: str | None = None) -> RunnableConfig:
    """Return the config of a thread (at one checkpoint, when given)."""
    configurable = {"thread_id": thread, "checkpoint_ns": ""}
    configurable |= {"checkpoint_id": checkpoint_id} if checkpoint_id is not None else {}
    return {"configurable": configurable, "recursion_limit": 32}


def checkpoint_id(snapshot: StateSnapshot) -> str:
    """Return a snapshot's checkpoint id."""
    return str(snapshot.config["configurable"]["checkpoint_id"])


def no_thread(thread: str, db: str = "DB") -> ConfigError:
    """Return the one error every command gives for a thread with no step in a database."""
    return ConfigError(
        f"no steps for thread {thread!r} in {db}: run `llm-as-rnn trace --db {db}` to list "
        "its threads"
    )


async def head_of(
    graph: Graph, thread: str, *, finished: bool = False, db: str = "DB"
) -> StateSnapshot:
    """Return a thread's latest checkpoint, or raise ``no_thread``.

    ``finished``: refuse (``StateError``) a thread with a step under way.
    """
    head = await graph.aget_state(config_of(thread))
    if not head.values.get("step") and not head.values.get("event"):  # a rewind to h_0 has one
        raise no_thread(thread, db)
    if finished and head.next:
        raise StateError(
            f"thread {thread!r} has an unfinished step {head.values['step'] + 1}: finish it "
            "first (run the same command again, or OnlineLearner.learn/discard)"
        )
    return head


async def tree_of(graph: Graph, thread: str) -> Tree:
    """Return every checkpoint of a thread, on every branch, oldest first."""
    found = [s async for s in graph.aget_state_history(config_of(thread))]
    return {checkpoint_id(s): s for s in sorted(found, key=checkpoint_id)}  # ids sort by time


def lineage(tree: Tree, head: StateSnapshot) -> list[StateSnapshot]:
    """Return the checkpoints from a thread's first to ``head``, following parent links."""
    chain: list[StateSnapshot] = []
    at: StateSnapshot | None = tree.get(checkpoint_id(head), head)
    while at is not None:
        chain.append(at)
        parent = (at.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        at = tree.get(parent) if parent else None
    return chain[::-1]


def visible(head: StateSnapshot, records: list[StepRecord]) -> list[StepRecord]:
    """Return the records of the head's branch (a rewind's old records not yet moved dropped)."""
    event = head.values.get("event")
    if event and event["kind"] == "rewind":
        return [r for r in records if r["step"] <= event["after_step"]]
    return records


async def trace_of(graph: Graph, thread: str) -> list[StepRecord]:
    """Return the step records of a thread's current branch (``read_trace``, head-aware)."""
    assert graph.store is not None
    head = await graph.aget_state(config_of(thread))
    return visible(head, await read_records(graph.store, namespaces.trace(thread)))


def events(snapshots: list[StateSnapshot]) -> list[MemoryEvent]:
    """Return the rewinds and edits the snapshots hold, each once, in the order given."""
    found: dict[str, MemoryEvent] = {}
    for snapshot in snapshots:
        event = snapshot.values.get("event")
        if event and event["id"] not in found:
            found[event["id"]] = event
    return list(found.values())


async def events_of(graph: Graph, thread: str) -> list[MemoryEvent]:
    """Return every rewind and edit a thread's memory went through, on every branch, by time."""
    return events(list((await tree_of(graph, thread)).values()))


async def versions(
    graph: Graph,
    thread: str,
    count: TokenCounter,
    *,
    all_branches: bool = False,
    branch: str | None = None,
) -> list[Version]:
    """Return a thread's memory versions: its current branch, then (``all_branches``) old ones.

    ``branch`` (an old branch's ``short_id``): that branch's lineage, from h_0.
    """
    assert graph.store is not None
    head = await head_of(graph, thread)
    tree = await tree_of(graph, thread)
    records = await read_records(graph.store, namespaces.trace(thread))
    first = records
    for event in events(list(tree.values())):  # rewound to h_0: step 1's record is an old one
        if not any(r["step"] == 1 for r in first) and event["kind"] == "rewind":
            first = await read_records(graph.store, namespaces.branch(thread, event["branch"]))
    h0 = head.values["memory"] if not head.values["step"] else ""  # no step ever finished
    out = [await _h0(graph.store, thread, first, count, h0)]
    out += _walk(lineage(tree, head), {r["step"]: r for r in visible(head, records)}, count, -1)
    if not all_branches and branch is None:
        return out
    leaves: dict[str, str] = {}
    older: list[list[Version]] = []
    for event in reversed([e for e in events(list(tree.values())) if e["kind"] == "rewind"]):
        leaf, after = event["branch"], event["after_step"]
        if leaf not in tree:
            continue
        steps = {r["step"]: r for r in records if r["step"] <= after}
        steps |= {
            r["step"]: r for r in await read_records(graph.store, namespaces.branch(thread, leaf))
        }
        seen = {v.checkpoint for v in out} | {v.checkpoint for vs in older for v in vs}
        walked = _walk(lineage(tree, tree[leaf]), steps, count, after, short_id(leaf))
        older.append([v for v in walked if v.checkpoint not in seen])
        leaves[short_id(leaf)] = leaf
    out += [v for vs in reversed(older) for v in vs]  # the oldest branch first
    if branch is None:
        return out
    if branch not in leaves:
        raise ConfigError(
            f"thread {thread!r} has no old branch {branch!r}: `memory log --all` lists them"
            + (f" ({', '.join(leaves)})" if leaves else " (it has none)")
        )
    on = {checkpoint_id(s) for s in lineage(tree, tree[leaves[branch]])}
    return [v for v in out if v.checkpoint is None or v.checkpoint in on]


async def _h0(
    store: BaseStore, thread: str, records: list[StepRecord], count: TokenCounter, h0: str
) -> Version:
    first = next((r for r in records if r["step"] == 1), None)
    memory = first["memory_before"] if first else h0
    settings = await recorded_settings(store, thread) or {}
    item = await store.aget(namespaces.imported(thread), "h0")
    imported = dict(item.value) if item else None
    made = "import" if imported or settings.get("initial_memory") else "h0"
    budget = first["budget"] if first else int(settings.get("budget") or 0)
    return Version(0, memory, made, budget, count(memory), imported=imported)


def _walk(
    chain: list[StateSnapshot],
    records: dict[int, StepRecord],
    count: TokenCounter,
    after: int,
    branch: str | None = None,
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
            where = checkpoint_id(snapshot)
            out.append(Version(step, memory, made, budget, tokens, record, event, branch, where))
    return out


async def predictor_counter(store: BaseStore, thread: str) -> TokenCounter:
    """Return the token counter of a thread's predictor, from its recorded settings.

    The recorded identity is enough to resolve it again (no ``--model``); a
    chat model object cannot be rebuilt from it: ``ConfigError``.
    """
    settings = await recorded_settings(store, thread)
    if settings is None:
        raise no_thread(thread)
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


async def versions_of(
    graph: Graph, thread: str, *, all_branches: bool = False, branch: str | None = None
) -> list[Version]:
    """Return ``versions``, counted with the thread's own predictor tokenizer."""
    assert graph.store is not None
    count = await predictor_counter(graph.store, thread)
    return await versions(graph, thread, count, all_branches=all_branches, branch=branch)


def pick(found: list[Version], step: int | None, thread: str) -> Version:
    """Return the memory after ``step`` on one branch's lineage (None: its latest).

    ``found``: ``versions`` of one branch (the current one, or ``branch=``); a
    step only an old branch has is named with the way to read it.
    """
    if step is None:
        return found[-1]
    at = [v for v in found if v.step == step]
    if not at:
        raise ConfigError(
            f"thread {thread!r} has no step {step} on this branch: give a step from 0 to "
            f"{found[-1].step}, or the --branch of an older one (`memory log --all` lists them)"
        )
    return at[-1]
