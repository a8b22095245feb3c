"""The sequence driver: feed a sequence to the graph one timestep per run.

Each timestep is its own run on the sequence's thread, hence its own durable
unit: after a crash, calling ``run_sequence`` again with the same thread and
database finishes the interrupted step from its last checkpoint and goes on
after the last finished one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Command, StateSnapshot
from pydantic import ValidationError

from llm_as_rnn.core.budget import check_run_budget
from llm_as_rnn.core.context import Context, coerce_context
from llm_as_rnn.core.history import settle
from llm_as_rnn.core.identity import check_thread
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.rejections import RejectionCounts, rejections
from llm_as_rnn.core.state import (
    RUN_INPUT,
    DiscardRecord,
    Observation,
    StepRecord,
    check_targets,
)
from llm_as_rnn.core.state import thread_name as thread_name  # its home until issue 23
from llm_as_rnn.core.warm import new_warm_start, record_start, warm_context
from llm_as_rnn.errors import ConfigError, from_validation
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.leases import holding
from llm_as_rnn.runtime.storage import leases_of, read_records
from llm_as_rnn.tasks import get_task

OnStep = Callable[[StepRecord], Awaitable[None] | None]


@dataclass
class SequenceResult:
    """What a call to ``run_sequence`` did."""

    thread_id: str
    memory: str
    """The memory after the last finished step."""
    steps_done: int
    """Finished steps on the thread (this call and earlier ones)."""
    rejections: RejectionCounts = field(default_factory=lambda: rejections([]))
    """The thread's rewrites and those rejected, by kind (as the run summary counts them)."""


def _config(thread_id: str) -> RunnableConfig:
    # One observation per run: 3 node steps, far below the limit; set it anyway.
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 32}


async def run_sequence(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    observations: Sequence[Observation],
    *,
    thread_id: str,
    context: Context | dict[str, Any] | None = None,
    budget: int | None = None,
    steps: int | None = None,
    on_step: OnStep | None = None,
    allow_new_settings: bool = False,
    initial_memory: str | MemoryFile | None = None,
) -> SequenceResult:
    """Run ``observations`` (the whole sequence, from its first step) on a thread.

    Steps already finished on the thread are skipped; an interrupted step is
    finished first, except one cut short before its prediction (a bad budget
    given straight to the graph, a model that failed in ``predict``): nothing
    of it was seen, so it is dropped and run again from ``observations`` with
    this call's budget and settings. Every argument, the budget against the
    task's section headers included, is checked before any step. In
    ``deferred`` feedback mode the target of each step is sent only after the
    prediction, through ``Command(resume=target)``.

    Args:
        graph: A graph compiled with a checkpointer (see ``build_graph``).
        observations: The sequence, from its first timestep.
        thread_id: The sequence's thread.
        context: Run parameters (a ``Context``, or a plain dict of its fields).
        budget: Memory budget (else the thread's, else ``context.budget``).
        steps: Stop after this many finished steps in total (default: all).
        on_step: Called with each step record as it finishes.
        allow_new_settings: Continue a thread whose recorded settings (model,
            task, budget, sampling, ...) or finished steps' data differ from
            these; without it such a resume is a ``ConfigError`` naming each
            difference (see ``llm_as_rnn.core.identity``).
        initial_memory: A warm start (``core.warm``): a new thread's h_0, as a
            text or a ``MemoryFile`` (``read_memory_file``); it sets the
            context's ``initial_memory``, so it is part of the thread's identity.
            Another task's memory is a ``DataError``.

    With a database from ``open_storage``, the run holds the thread's lease:
    another process running the same thread meanwhile gets a
    ``ThreadBusyError`` (a ``LeaseError``) naming this one.
    """
    if not isinstance(graph, CompiledStateGraph) or graph.checkpointer is None:
        raise ConfigError(
            "run_sequence needs a graph compiled with a checkpointer: "
            "build_graph(checkpointer, store), e.g. from open_storage"
        )
    thread_id = thread_name(thread_id)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise ConfigError(f"invalid steps: {steps!r} is not a count (0 or more, or None for all)")
    if on_step is not None and not callable(on_step):
        raise ConfigError(f"on_step {on_step!r:.60} is not callable: give a function or None")
    context, imported = warm_context(coerce_context(context), initial_memory)
    check_input(observations, budget)
    # Every target now, before any step: a bad one mid-sequence would stop the run there.
    check_targets(get_task(context.task), observations, required=context.feedback != "judge")
    config = _config(thread_id)
    total = len(observations) if steps is None else min(steps, len(observations))
    result = SequenceResult(thread_id=thread_id, memory="", steps_done=0)
    seen: list[StepRecord] = []  # this call's steps: the thread's, when there is no store

    async def finish(payload: Any) -> dict[str, Any]:
        values = await graph.ainvoke(payload, config, context=context, durability="exit")
        while values.get("__interrupt__"):  # deferred: the truth arrives now
            target = observations[values.get("step", 0)].get("target")
            values = await graph.ainvoke(
                Command(resume=target), config, context=context, durability="exit"
            )
        record = values.get("last_step")
        if record is not None:
            seen.append(record)
        if record is not None and on_step is not None:
            maybe = on_step(record)
            if maybe is not None:
                await maybe
        return dict(values)

    store = graph.store
    async with holding(leases_of(store), thread_id) as lease:  # one writer per thread
        await settle(graph, thread_id)  # a rewind cut short is finished first
        snapshot = await graph.aget_state(config)
        values: dict[str, Any] = dict(snapshot.values)
        records = await read_trace(store, thread_id) if store and values.get("step") else []
        pending = await check_thread(
            store,
            thread_id,
            context,
            budget=budget,
            observations=observations,
            records=records,
            allow_new_settings=allow_new_settings,
        )
        unstarted = never_predicted(snapshot)
        before = await last_finished(graph, config) if unstarted else snapshot
        kept = before.values.get("budget") if before is not None else None
        if values.get("step", 0) < total:  # a step will run: its budget must hold the headers
            await check_run_budget(context, budget or kept or context.budget)
        start = await new_warm_start(
            store, thread_id, context, imported, budget or kept or context.budget
        )
        if unstarted:  # re-run below from the data, with this call's budget and settings
            await rewind(graph, config, before)
            snapshot = await graph.aget_state(config)
            values = dict(snapshot.values)
        if snapshot.next:  # a step was cut short: finish it from its checkpoint
            target = observations[values.get("step", 0)].get("target")
            values = await finish(Command(resume=target) if snapshot.interrupts else None)
        while (done := values.get("step", 0)) < total:
            observation = dict(observations[done])
            if context.feedback == "deferred":
                observation.pop("target", None)
            payload: dict[str, Any] = {"observations": [observation]}
            if budget is not None:
                payload["budget"] = budget
            lease.check()
            values = await finish(payload)
            if pending is not None:  # recorded once a step with them has finished
                await record_start(store, thread_id, pending, start)
                pending = None
        if pending is not None and values.get("step"):  # only an interrupted step was finished
            await record_start(store, thread_id, pending, start)
        result.memory = values.get("memory", "")
        result.steps_done = values.get("step", 0)
        result.rejections = rejections(await read_trace(store, thread_id) if store else seen)
    return result


async def last_finished(
    graph: CompiledStateGraph[Any, Any, Any, Any], config: RunnableConfig
) -> StateSnapshot | None:
    """Return a thread's last checkpoint with no step under way (None for a new thread)."""
    async for snapshot in graph.aget_state_history(config):
        if not snapshot.next:
            return snapshot
    return None


async def rewind(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    config: RunnableConfig,
    before: StateSnapshot | None,
) -> None:
    """Drop a thread's unfinished step: back to ``before`` (``last_finished``), or to nothing.

    LangGraph time travel: a copy of the finished checkpoint becomes the
    latest, so the drop holds across restarts; a new thread is deleted.
    """
    if before is None:
        checkpointer = graph.checkpointer
        assert isinstance(checkpointer, BaseCheckpointSaver)  # run_sequence and the learner check
        await checkpointer.adelete_thread(config["configurable"]["thread_id"])
    else:
        await graph.aupdate_state(before.config, None, as_node="__copy__")


def never_predicted(snapshot: StateSnapshot) -> bool:
    """Return whether a thread's unfinished step was cut short before its prediction.

    Nothing of it was seen (no prediction was returned): dropping it loses nothing.
    """
    return tuple(snapshot.next) == ("predict",)


def pending_step(snapshot: StateSnapshot) -> int:
    """Return the number of a thread's pending (or next) step."""
    return int(snapshot.values.get("step") or 0) + 1


def dropped(snapshot: StateSnapshot) -> DiscardRecord:
    """Return the record of a thread's unfinished step, as ``OnlineLearner.discard`` keeps it."""
    values = snapshot.values
    predicted = not never_predicted(snapshot)
    shown = values.get("current") if predicted else (values.get("observations") or [{}])[0]
    return DiscardRecord(
        step=pending_step(snapshot),
        id=(shown or {}).get("id"),
        input=(shown or {}).get("input"),
        prediction=values.get("prediction") if predicted else None,
    )


def check_input(observations: Sequence[Observation], budget: int | None = None) -> None:
    """Raise a one-line ``ConfigError`` for a run input the graph would refuse mid-run.

    Checked before any step (and any model call): an empty input, a malformed
    observation or an out-of-range budget is the caller's to fix.
    """
    given = list(observations) if isinstance(observations, Sequence) else observations
    payload: dict[str, Any] = {"observations": given}
    if budget is not None:
        payload["budget"] = budget
    try:
        RUN_INPUT.validate_python(payload)
    except ValidationError as exc:
        raise from_validation(exc) from None


async def read_trace(store: BaseStore, thread_id: str) -> list[StepRecord]:
    """Return every step record of a thread from the store, in step order.

    The store alone: between a rewind's commit and the next writer (a rewind
    killed before its last move, ``core.history``) it still holds the old steps
    after the rewind's step. ``core.branches.trace_of`` reads the head too and
    drops them; it needs the graph (``OnlineLearner.history`` uses it).
    """
    if not isinstance(store, BaseStore):
        raise ConfigError(
            f"read_trace needs a LangGraph store (e.g. from open_storage), not {store!r}"
        )
    return await read_records(store, namespaces.trace(thread_name(thread_id)))


async def read_discards(store: BaseStore, thread_id: str) -> list[DiscardRecord]:
    """Return a thread's discarded steps (``OnlineLearner.discard``), oldest first."""
    return await read_records(store, namespaces.discarded(thread_name(thread_id)))
