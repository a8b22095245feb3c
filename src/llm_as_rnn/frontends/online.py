"""Online learning for applications: predict now, learn when the truth arrives.

``OnlineLearner`` runs the graph in ``deferred`` feedback mode, one thread per
stream (a user, a ticker, a patient):

- ``predict(thread, input)`` runs the step up to the prediction and pauses it
  (a LangGraph interrupt, checkpointed: the pause survives restarts);
- ``learn(thread, target)`` resumes it with the truth, minutes or days later:
  the critique and the rewrite update the thread's memory;
- ``discard(thread)`` drops the pending step instead (the truth never came):
  the thread is back where it was before that ``predict``, and the dropped
  step is kept in ``discarded(thread)``;
- ``memory(thread)`` and ``history(thread)`` read the state and the trace
  (``memory`` of a new thread: the h_0 its first step will read, fitted).

Every argument is checked before the graph runs: a bad one (a target that is
not one of the task's labels, a blank or non-JSON input, a budget too small
for the task's memory headers) is a ``ConfigError`` (a ``DataError`` for data
values) and leaves the thread exactly as it was; a call out of order is a
``LearnerStateError`` (a ``StateError``) naming the call to make. A step is
learned with the settings it was predicted with; calls on one thread run one
at a time (a lock, and the database's lease across processes). Async twins:
``apredict``, ...; the sync ones run on a private loop. Warnings (an import
truncated to λ) go through ``warnings.warn`` (``MemoryFitWarning``), once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, StateSnapshot
from pydantic import ValidationError

from llm_as_rnn.core.branches import config_of, trace_of
from llm_as_rnn.core.context import Context, coerce_context
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.history import settle as finish_rewind
from llm_as_rnn.core.identity import PENDING, forget_settings
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.pending import held, hold, settle, starting
from llm_as_rnn.core.sequence import (
    dropped,
    last_finished,
    never_predicted,
    pending_step,
    read_discards,
    rewind,
    thread_name,
)
from llm_as_rnn.core.state import (
    OBSERVATION,
    DiscardRecord,
    Observation,
    Prediction,
    StepRecord,
    checked_target,
)
from llm_as_rnn.core.warm import first_memory, warm_context
from llm_as_rnn.errors import ConfigError, LearnerStateError, StateError, from_validation
from llm_as_rnn.frontends.concurrency import LoopThread, ThreadLocks
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.journal import forget
from llm_as_rnn.runtime.leases import Lease, holding
from llm_as_rnn.runtime.storage import leases_of, open_storage
from llm_as_rnn.tasks import get_task

T = TypeVar("T")


class OnlineLearner:
    """LLM-as-RNN inside an application: predict, then learn from the truth."""

    def __init__(
        self,
        context: Context | dict[str, Any] | None = None,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
        allow_new_settings: bool = False,
        initial_memory: str | MemoryFile | None = None,
    ) -> None:
        """Create a learner; in-memory persistence unless you pass your own.

        A thread remembers the settings it learned with: predicting on it with
        other settings (model, task, budget, ...) raises ``ConfigError``
        unless ``allow_new_settings`` (e.g. after a deliberate model upgrade).
        ``initial_memory`` (a text or ``MemoryFile``) is new threads' h_0: a
        warm start (``core.warm``); another task's is a ``DataError``.
        """
        self.allow_new_settings = allow_new_settings
        given, self.initial_memory = warm_context(coerce_context(context), initial_memory)
        if given.feedback == "judge":  # it would be ignored: the learner is taught by learn()
            raise ConfigError(
                "OnlineLearner learns from learn()'s truths: 'judge' is for run_sequence"
            )
        self.context = given.model_copy(update={"feedback": "deferred"})
        self.task = get_task(self.context.task)
        self.store = store if store is not None else InMemoryStore()
        self.graph = build_graph(checkpointer or InMemorySaver(), self.store)
        self._loop: LoopThread | None = None
        self._exit: AsyncExitStack | None = None
        self._closed = False
        self._locks = ThreadLocks()
        self._said: set[str] = set()  # threads whose h_0 fit memory() already warned of

    @classmethod
    @asynccontextmanager
    async def aopen(
        cls,
        db: str | os.PathLike[str],
        context: Context | dict[str, Any] | None = None,
        *,
        allow_new_settings: bool = False,
        initial_memory: str | MemoryFile | None = None,
    ) -> AsyncIterator[OnlineLearner]:
        """Open a learner on a database (``open_storage``) as an async context manager.

        ``async with OnlineLearner.aopen("app.db", context) as learner:``; the
        database is closed when the block ends.
        """
        context = coerce_context(context)  # a bad one is refused before the file is touched
        async with open_storage(db) as (checkpointer, store):
            learner = cls(
                context,
                checkpointer=checkpointer,
                store=store,
                allow_new_settings=allow_new_settings,
                initial_memory=initial_memory,
            )
            try:
                yield learner
            finally:
                learner._closed = True

    @classmethod
    def open(
        cls,
        db: str | os.PathLike[str],
        context: Context | dict[str, Any] | None = None,
        *,
        allow_new_settings: bool = False,
        initial_memory: str | MemoryFile | None = None,
    ) -> OnlineLearner:
        """Open a learner on a database for the sync methods; ``close()`` it after.

        Or use it as a context manager: ``with OnlineLearner.open("app.db") as learner:``.
        """
        context = coerce_context(context)
        loop = LoopThread()

        async def enter() -> OnlineLearner:
            async with AsyncExitStack() as stack:
                checkpointer, store = await stack.enter_async_context(open_storage(db))
                learner = cls(
                    context,
                    checkpointer=checkpointer,
                    store=store,
                    allow_new_settings=allow_new_settings,
                    initial_memory=initial_memory,
                )
                learner._exit = stack.pop_all()
                return learner

        try:
            learner = loop.run(enter())
        except BaseException:
            loop.stop()
            raise
        learner._loop = loop
        return learner

    def close(self) -> None:
        """Close the database (for ``open``) and the private loop; a closed database stays so."""
        if self._loop is not None:
            if self._exit is not None:
                self._closed = True
                self._loop.run(self._exit.aclose())
            self._loop.stop()
            self._loop = None

    def __enter__(self) -> OnlineLearner:
        """Use the learner in a ``with`` block; ``close`` it at the end."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the learner (``close``)."""
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop.run(coro)

    def _check_open(self) -> None:
        if self._closed:
            raise StateError("the learner is closed: open a new one (OnlineLearner.open)")

    async def _state(self, thread: str) -> tuple[RunnableConfig, StateSnapshot]:
        """Return a thread's config and current state; ``ConfigError`` for a bad thread name."""
        self._check_open()
        config = config_of(thread_name(thread))
        return config, await self.graph.aget_state(config)

    @asynccontextmanager
    async def _writing(self, thread: str) -> AsyncIterator[Lease]:
        """Hold the thread for one write: its lock in this process, its lease across processes.

        The lock runs concurrent calls on one thread (``asyncio.gather``, threads on the
        sync methods) one after the other: the second sees what the first did.
        """
        self._check_open()
        name = thread_name(thread)
        async with self._locks.holding(name), holding(leases_of(self.store), name) as lease:
            self._check_open()  # closed while this call waited
            await finish_rewind(self.graph, name)  # first finish a rewind cut short
            yield lease

    async def apredict(self, thread: str, input: Any, *, id: str | None = None) -> Prediction:
        """Predict the outcome of ``input``; the step waits for ``learn`` (or ``discard``)."""
        fields: dict[str, Any] = {"input": input} if id is None else {"input": input, "id": id}
        try:
            observation: Observation = OBSERVATION.validate_python(fields)
        except ValidationError as exc:
            raise from_validation(exc) from None
        async with self._writing(thread):  # one writer per thread, across processes
            config, state = await self._state(thread)
            unstarted = never_predicted(state)  # cut short before its prediction: run it anew
            if state.next and not unstarted:
                raise LearnerStateError(
                    f"thread {thread!r} has a pending step {pending_step(state)}: call learn() "
                    "with its truth, or discard() to drop it, first"
                )
            settings, imported = await starting(
                self.store,
                thread,
                self.context,
                state.values.get("budget") or self.context.budget,
                self.initial_memory,
                self.allow_new_settings,
                say=thread not in self._said,
            )
            if unstarted:  # nothing of it was seen: no discard record
                await rewind(self.graph, config, await last_finished(self.graph, config))
            result = await self.graph.ainvoke(
                {"observations": [observation]}, config, context=self.context, durability="exit"
            )
            # The step's settings: its learn must use the same; recorded for good at learn.
            await hold(self.store, thread, self.context, settings, imported)
            prediction: Prediction = result["__interrupt__"][0].value["prediction"]
            return prediction

    async def alearn(self, thread: str, target: Any) -> StepRecord:
        """Give the truth of the pending prediction; return the finished step's record."""
        async with self._writing(thread):  # one writer per thread, across processes
            config, state = await self._state(thread)
            if not state.interrupts:
                cut = " (its step was cut short: call discard() to drop it)" if state.next else ""
                raise LearnerStateError(
                    f"no prediction of thread {thread!r} waits for its truth{cut}: "
                    "call predict() first"
                )
            target = checked_target(self.task, target)  # a DataError naming what is expected
            step = pending_step(state)
            settings, imported = await held(
                self.store, thread, step, self.context, self.allow_new_settings
            )
            result = await self.graph.ainvoke(
                Command(resume=target), config, context=self.context, durability="exit"
            )
            record: StepRecord = result["last_step"]
            await settle(self.store, thread, settings, imported)
            return record

    async def adiscard(self, thread: str) -> DiscardRecord:
        """Drop the pending step: the thread goes back to before its ``predict``.

        The memory and history are unchanged; the dropped step is recorded
        (``discarded``). Works on any unfinished step, also one cut short by
        an error. Raises ``LearnerStateError`` when no step is pending.
        """
        async with self._writing(thread):  # one writer per thread, across processes
            config, state = await self._state(thread)
            if not state.next:
                raise LearnerStateError(
                    f"no step of thread {thread!r} is pending: nothing to discard"
                )
            before = await last_finished(self.graph, config)  # as it was before that predict
            record = dropped(state)
            # Keyed by the checkpoint too: a retried discard rewrites its own record.
            key = f"{record['step']:06d}:{state.config['configurable']['checkpoint_id']}"
            await self.store.aput(namespaces.discarded(thread), key, dict(record), index=False)
            await forget(self.store, thread, record["step"] + 1)  # its journaled calls
            await forget_settings(self.store, thread, PENDING)
            await rewind(self.graph, config, before)
            return record

    async def amemory(self, thread: str) -> str:
        """Return the thread's memory; before any step, its fitted h_0 (``warm.first_memory``)."""
        _, state = await self._state(thread)
        if state.values.get("memory"):
            return str(state.values["memory"])
        budget = state.values.get("budget") or self.context.budget
        said = thread in self._said
        self._said.add(thread)  # its fit is said once: here, or at its first predict
        return await first_memory(self.context, self.initial_memory, budget, say=not said)

    async def ahistory(self, thread: str) -> list[StepRecord]:
        """Return the records of the thread's finished steps, oldest first."""
        await self._state(thread)
        return await trace_of(self.graph, thread)  # not read_trace: a cut-short rewind's old steps

    async def adiscarded(self, thread: str) -> list[DiscardRecord]:
        """Return the thread's discarded steps, oldest first."""
        await self._state(thread)
        return await read_discards(self.store, thread)

    def predict(self, thread: str, input: Any, *, id: str | None = None) -> Prediction:
        """Sync ``apredict``."""
        return self._run(self.apredict(thread, input, id=id))

    def learn(self, thread: str, target: Any) -> StepRecord:
        """Sync ``alearn``."""
        return self._run(self.alearn(thread, target))

    def discard(self, thread: str) -> DiscardRecord:
        """Sync ``adiscard``."""
        return self._run(self.adiscard(thread))

    def memory(self, thread: str) -> str:
        """Sync ``amemory``."""
        return self._run(self.amemory(thread))

    def history(self, thread: str) -> list[StepRecord]:
        """Sync ``ahistory``."""
        return self._run(self.ahistory(thread))

    def discarded(self, thread: str) -> list[DiscardRecord]:
        """Sync ``adiscarded``."""
        return self._run(self.adiscarded(thread))
