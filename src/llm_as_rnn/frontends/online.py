"""Online learning for applications: predict now, learn when the truth arrives.

``OnlineLearner`` runs the graph in ``deferred`` feedback mode, one thread per
stream (a user, a ticker, a patient):

- ``predict(thread, input)`` runs the step up to the prediction and pauses it
  (a LangGraph interrupt, checkpointed: the pause survives restarts);
- ``learn(thread, target)`` resumes it with the truth, minutes or days later:
  the critique and the rewrite update the thread's memory;
- ``memory(thread)`` and ``history(thread)`` read the state and the trace.

Every method has an async twin (``apredict``, ``alearn``, ...). Use one style
per learner: the sync methods run on a private event loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from llm_as_rnn.core.context import Context, coerce_context
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.identity import check_thread, record_settings
from llm_as_rnn.core.sequence import read_trace
from llm_as_rnn.core.state import Observation, Prediction, StepRecord
from llm_as_rnn.errors import StateError
from llm_as_rnn.runtime.storage import open_storage
from llm_as_rnn.tasks import get_task

T = TypeVar("T")


class LearnerStateError(StateError):
    """A call out of order: predict twice without learning, or learn without a prediction."""


class _LoopThread:
    """An event loop on a daemon thread, for the sync methods."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class OnlineLearner:
    """LLM-as-RNN inside an application: predict, then learn from the truth."""

    def __init__(
        self,
        context: Context | dict[str, Any] | None = None,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
        allow_new_settings: bool = False,
    ) -> None:
        """Create a learner; in-memory persistence unless you pass your own.

        A thread remembers the settings it learned with: predicting on it with
        other settings (model, task, budget, ...) raises ``ConfigError``
        unless ``allow_new_settings`` (e.g. after a deliberate model upgrade).
        """
        self.allow_new_settings = allow_new_settings
        self._pending: dict[str, dict[str, Any]] = {}
        self.context = coerce_context(context).model_copy(update={"feedback": "deferred"})
        self.store = store if store is not None else InMemoryStore()
        self.graph = build_graph(checkpointer or InMemorySaver(), self.store)
        self._loop: _LoopThread | None = None
        self._exit: AsyncExitStack | None = None

    # ------------------------------------------------------------ opening

    @classmethod
    @asynccontextmanager
    async def aopen(cls, db: str, context: Context | None = None) -> AsyncIterator[OnlineLearner]:
        """Open a learner on a SQLite database (async context manager)."""
        async with open_storage(db) as (checkpointer, store):
            yield cls(context, checkpointer=checkpointer, store=store)

    @classmethod
    def open(cls, db: str, context: Context | None = None) -> OnlineLearner:
        """Open a learner on a SQLite database for the sync methods; ``close()`` it after."""
        loop = _LoopThread()

        async def enter() -> OnlineLearner:
            stack = AsyncExitStack()
            checkpointer, store = await stack.enter_async_context(open_storage(db))
            learner = cls(context, checkpointer=checkpointer, store=store)
            learner._exit = stack
            return learner

        learner = loop.run(enter())
        learner._loop = loop
        return learner

    def close(self) -> None:
        """Close the database (for ``open``) and the private loop."""
        if self._loop is not None:
            if self._exit is not None:
                self._loop.run(self._exit.aclose())
            self._loop.stop()
            self._loop = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(coro)

    # ------------------------------------------------------------ async API

    def _config(self, thread: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread}, "recursion_limit": 32}

    async def apredict(self, thread: str, input: Any, *, id: str | None = None) -> Prediction:
        """Predict the outcome of ``input``; the step waits for ``learn``."""
        config = self._config(thread)
        state = await self.graph.aget_state(config)
        if state.next:
            step = state.values.get("step", 0) + 1
            raise LearnerStateError(
                f"thread {thread!r} waits for the truth of step {step}: call learn() first"
            )
        pending = await check_thread(
            self.store, thread, self.context, allow_new_settings=self.allow_new_settings
        )
        if pending is not None:
            self._pending[thread] = pending  # recorded when the step is learned
        observation = Observation(input=input)
        if id is not None:
            observation["id"] = id
        result = await self.graph.ainvoke(
            {"observations": [observation]}, config, context=self.context, durability="exit"
        )
        prediction: Prediction = result["__interrupt__"][0].value["prediction"]
        return prediction

    async def alearn(self, thread: str, target: Any) -> StepRecord:
        """Give the truth of the pending prediction; return the finished step's record."""
        config = self._config(thread)
        state = await self.graph.aget_state(config)
        if not state.interrupts:
            raise LearnerStateError(
                f"no prediction of thread {thread!r} waits for its truth: call predict() first"
            )
        result = await self.graph.ainvoke(
            Command(resume=target), config, context=self.context, durability="exit"
        )
        record: StepRecord = result["last_step"]
        if thread in self._pending:
            await record_settings(self.store, thread, self._pending.pop(thread))
        return record

    async def amemory(self, thread: str) -> str:
        """Return the thread's current memory (the task's h_0 before any step)."""
        values = (await self.graph.aget_state(self._config(thread))).values
        return str(values.get("memory") or get_task(self.context.task).initial_memory())

    async def ahistory(self, thread: str) -> list[StepRecord]:
        """Return the records of the thread's finished steps, oldest first."""
        return await read_trace(self.store, thread)

    # ------------------------------------------------------------ sync API

    def predict(self, thread: str, input: Any, *, id: str | None = None) -> Prediction:
        """Sync ``apredict``."""
        return self._run(self.apredict(thread, input, id=id))

    def learn(self, thread: str, target: Any) -> StepRecord:
        """Sync ``alearn``."""
        return self._run(self.alearn(thread, target))

    def memory(self, thread: str) -> str:
        """Sync ``amemory``."""
        return self._run(self.amemory(thread))

    def history(self, thread: str) -> list[StepRecord]:
        """Sync ``ahistory``."""
        return self._run(self.ahistory(thread))
