"""A deferred step's start records: held when it is predicted, written when it is learned.

``OnlineLearner`` predicts a step in one call and learns it in another, maybe
in another process. What the step is to record once finished (a new thread's
settings, a warm start's import) is decided at predict and held in the store
under ``identity.PENDING``, with the settings it was predicted with: its learn
must use the same (``identity.check_pending``).
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from llm_as_rnn.core.budget import check_run_budget
from llm_as_rnn.core.context import Context
from llm_as_rnn.core.identity import (
    PENDING,
    check_pending,
    check_thread,
    forget_settings,
    record_settings,
    recorded_settings,
    settings_of,
)
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.warm import new_warm_start, record_start


async def starting(
    store: BaseStore,
    thread_id: str,
    context: Context,
    budget: int,
    initial_memory: MemoryFile | None,
    allow_new_settings: bool,
    say: bool = True,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Check a step may start on a thread; return what it records when learned (``hold``).

    ``say``: warn of a fitted import (``warm.warm_start``), unless said already.

    Refuses other settings (``check_thread``) and a budget too small for the
    task's headers, before any step; fits a new thread's imported memory.
    """
    settings = await check_thread(store, thread_id, context, allow_new_settings=allow_new_settings)
    await check_run_budget(context, budget)
    start = await new_warm_start(store, thread_id, context, initial_memory, budget, say=say)
    return settings, start


async def hold(
    store: BaseStore,
    thread_id: str,
    context: Context,
    settings: dict[str, Any] | None,
    imported: dict[str, Any] | None,
) -> None:
    """Hold what a predicted step records when learned, and the settings it was predicted with."""
    pending = {"settings": settings_of(context), "record": settings, "imported": imported}
    await record_settings(store, thread_id, pending, key=PENDING)


async def held(
    store: BaseStore, thread_id: str, step: int, context: Context, allow_new_settings: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Return what a pending step records when learned: settings and import (or None each).

    Refuses (``ConfigError``) to learn it with other settings than it was
    predicted with. A step predicted before anything was held (an older
    version) has its settings checked now, and no import.
    """
    pending = await recorded_settings(store, thread_id, PENDING)
    if pending is None:
        settings = await check_thread(
            store, thread_id, context, allow_new_settings=allow_new_settings
        )
        return settings, None
    check_pending(thread_id, step, pending["settings"], context)
    return pending["record"], pending.get("imported")


async def settle(
    store: BaseStore,
    thread_id: str,
    settings: dict[str, Any] | None,
    imported: dict[str, Any] | None,
) -> None:
    """Write what a learned step records (``held``), and drop what was held."""
    if settings is not None:  # a new thread's, or new ones allowed: from this step on
        await record_start(store, thread_id, settings, imported)
    await forget_settings(store, thread_id, PENDING)
