"""Continuous batching: calls for the local model join a running batch between passes.

One ``Engine`` serves one model in the process, whatever event loop a call
comes from. Its work runs on the torch thread one tick at a time: a tick
admits the calls that wait (while the batch has room), then runs one pass for
every row, then hands finished answers back to their callers' loops. Between
ticks the thread runs other jobs (label scoring), so they never wait for a
long generation to end. A lone call starts at once: batching adds no waiting
to a single sequence.

The batch itself (``runtime.decode.RunningBatch`` for a transformers model)
is anything with ``rows``, ``can_admit``, ``admit``, ``step`` and ``remove``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from llm_as_rnn.errors import ConfigError

BATCH_ENV = "LLM_AS_RNN_LOCAL_BATCH"
DEFAULT_MAX_BATCH = 8


MAX_COUNT = 999_999_999
"""The largest count read from the environment unless a setting says less."""


def env_count(
    name: str, minimum: int, meaning: str, example: int, unset: str, maximum: int = MAX_COUNT
) -> int | None:
    """Return env variable ``name`` as a count in ``[minimum, maximum]``, or None if unset.

    Every count the package reads from the environment goes through here: a
    value that is not a whole number of ASCII digits, or is outside the range,
    raises ``ConfigError`` naming the variable, what it counts, the range and
    how to set it (``example``; ``unset``: what leaving it unset does), never
    a default.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    digits = (raw.lstrip("0") or "0") if re.fullmatch(r"[0-9]+", raw) else None
    # past 40 digits it is over any maximum: never hand int() a huge string
    value = None if digits is None else int(digits) if len(digits) <= 40 else maximum + 1
    if value is None or not minimum <= value <= maximum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        rule = f"at most {maximum:,}" if value is not None and value > maximum else kind
        raise ConfigError(
            f"{name} must be {rule} ({meaning}), got {raw[:40]!r}{'...' if len(raw) > 40 else ''}: "
            f"set it like {name}={example}, or unset it {unset}"
        )
    return value


def count_from_env(name: str, default: int, minimum: int = 1, meaning: str = "a count") -> int:
    """Return env variable ``name`` as a count >= ``minimum``, ``default`` if unset."""
    value = env_count(name, minimum, meaning, default, f"for the default ({default})")
    return default if value is None else value


def max_batch_from_env() -> int:
    """Return the most rows in a batch: ``LLM_AS_RNN_LOCAL_BATCH`` (default 8; 1 = none)."""
    return count_from_env(BATCH_ENV, DEFAULT_MAX_BATCH, meaning="rows decoded at once")


R = TypeVar("R")


class Batch(Protocol[R]):
    """Rows decoding together (``runtime.decode.RunningBatch``)."""

    rows: list[R]

    def can_admit(self) -> bool:
        """Whether new rows may join now."""
        ...

    def admit(self, rows: Sequence[R]) -> list[R]:
        """Add rows (their prompts run, first tokens chosen); return the rows already done."""
        ...

    def step(self) -> list[R]:
        """Run one pass for every row; return the rows now done (they leave the batch)."""
        ...

    def remove(self, rows: Sequence[R]) -> None:
        """Drop rows nobody waits for."""
        ...


@dataclass(eq=False)
class _Call(Generic[R]):
    row: R
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R] = field(repr=False)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Engine(Generic[R]):
    """Run rows through one batch on ``executor``, rows joining and leaving at token boundaries."""

    def __init__(
        self,
        batch: Batch[R],
        executor: Executor,
        max_rows: Callable[[], int] = max_batch_from_env,
    ) -> None:
        self.batch = batch
        self.executor = executor
        self.max_rows = max_rows
        self.lock = threading.Lock()
        self.waiting: list[_Call[R]] = []
        self.running: dict[int, _Call[R]] = {}  # id(row) -> its call
        self.ticking = False
        self.passes: Counter[int] = Counter()
        """How many passes ran with each number of rows (for benchmarks and tests)."""

    async def submit(self, row: R) -> R:
        """Queue ``row``; return it once done (the batch fills in its tokens)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        call = _Call(row, loop, future)
        with self.lock:
            self.waiting.append(call)
            start = not self.ticking
            self.ticking = True
        if start:  # after this loop turn: calls made in the same turn join the first pass
            loop.call_soon(self.schedule)
        return await future

    def schedule(self) -> None:
        """Queue the next tick on the executor; if it is shut down, every call fails."""
        try:
            self.executor.submit(self.tick)
        except RuntimeError as exc:  # shut down (the interpreter is exiting): nobody may wait
            self.abandon(exc)
            with self.lock:
                self.ticking = False

    def tick(self) -> None:
        """Admit waiting rows, run one pass, return finished rows (on the executor's thread).

        Whatever raises, every call is answered and ticking goes on or stops as
        the work left says: a call never waits on an engine that stopped.
        """
        try:
            self.step_once()
        except Exception as exc:  # failing calls failed too (the batch cannot drop rows)
            self.abandon(exc)
        with self.lock:
            more = bool(self.batch.rows or self.waiting)
            self.ticking = more
        if more:
            self.schedule()

    def abandon(self, error: BaseException) -> None:
        """Fail every waiting and running call and empty the batch, whatever state it is in."""
        with self.lock:
            calls, self.waiting = self.waiting, []
        calls += list(self.running.values())
        self.running.clear()
        with contextlib.suppress(Exception):
            self.batch.remove(list(self.batch.rows))
        self.batch.rows = []  # rows it could not drop: nobody waits for them
        for call in calls:
            self.reply(call, None, error)

    def step_once(self) -> None:
        """One tick's work: admit the rows that fit, run one pass, hand back finished rows."""
        try:
            self.drop_cancelled()
            newcomers = self.take()
        except Exception as exc:  # e.g. a bad LLM_AS_RNN_LOCAL_BATCH: every caller hears it
            self.abandon(exc)
            return
        try:
            self.admit(newcomers)
            if self.batch.rows:
                self.passes[len(self.batch.rows)] += 1
                self.finish(self.batch.step())
        except Exception as exc:  # a pass failed: every row in flight fails with it
            self.fail(list(self.running.values()), exc)

    def admit(self, newcomers: list[_Call[R]]) -> None:
        """Add new rows to the batch; if their prompts fail, they fail alone."""
        if not newcomers:
            return
        self.running |= {id(c.row): c for c in newcomers}
        try:
            self.finish(self.batch.admit([c.row for c in newcomers]))
        except Exception as exc:  # e.g. a prompt too long: the running rows go on
            self.fail(newcomers, exc)

    def fail(self, calls: list[_Call[R]], error: Exception) -> None:
        """Take calls' rows out of the batch and hand them the error."""
        self.batch.remove([c.row for c in calls])
        for call in calls:
            self.running.pop(id(call.row), None)
            self.reply(call, None, error)

    def finish(self, rows: Sequence[R]) -> None:
        """Hand finished rows back to their callers."""
        for row in rows:
            call = self.running.pop(id(row), None)
            if call is not None:
                self.reply(call, row, None)

    def take(self) -> list[_Call[R]]:
        """Remove and return the waiting calls that fit in the batch now."""
        with self.lock:
            self.waiting = [c for c in self.waiting if not c.future.done()]
            room = max(1, self.max_rows()) - len(self.batch.rows)  # 0 rows would never run
            if room <= 0 or not self.waiting or not self.batch.can_admit():
                return []
            taken, self.waiting = self.waiting[:room], self.waiting[room:]
            return taken

    def drop_cancelled(self) -> None:
        """Stop decoding rows whose callers stopped waiting."""
        gone = [c for c in self.running.values() if c.future.done()]
        if gone:
            self.batch.remove([c.row for c in gone])
            for call in gone:
                del self.running[id(call.row)]

    @staticmethod
    def reply(call: _Call[R], row: R | None, error: BaseException | None) -> None:
        """Hand a result or an error to the caller's event loop."""
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            call.loop.call_soon_threadsafe(_settle, call.future, row, error)
