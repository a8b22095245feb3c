"""Gathering concurrent calls into batches for one worker.

Calls that wait for the local model while it is busy pile up; when it frees,
the oldest waiting call and every other waiting call with the same key, up
to ``max_batch``, run together (the local backend's key: the call's
generation settings). No timer:
a lone call starts at once, so batching never adds waiting to a single
sequence; it only uses the waiting concurrent sequences already do.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")

BATCH_ENV = "LLM_AS_RNN_LOCAL_BATCH"
DEFAULT_MAX_BATCH = 8


def max_batch_from_env() -> int:
    """Return the largest local batch (``LLM_AS_RNN_LOCAL_BATCH``, default 8; 1 = one at a time)."""
    raw = os.environ.get(BATCH_ENV, "").strip()
    try:
        value = int(raw) if raw else DEFAULT_MAX_BATCH
    except ValueError:
        value = DEFAULT_MAX_BATCH
    return max(1, value)


@dataclass(eq=False)
class _Waiting(Generic[P, R]):
    key: Hashable
    payload: P
    future: asyncio.Future[R] = field(repr=False)


class Batcher(Generic[P, R]):
    """Run payloads through ``run`` in batches of waiting calls with equal keys.

    ``run`` takes a list of payloads and returns one result per payload, in
    order; it is awaited one batch at a time. A batch's exception fails every
    call in it. One batcher serves one event loop (``for_loop``).
    """

    def __init__(
        self,
        run: Callable[[list[P]], Awaitable[Sequence[R]]],
        max_batch: Callable[[], int] = max_batch_from_env,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.waiting: list[_Waiting[P, R]] = []
        self.draining: asyncio.Task[None] | None = None
        self.sizes: Counter[int] = Counter()
        """How many batches of each size have run (for benchmarks and tests; bounded)."""

    async def submit(self, key: Hashable, payload: P) -> R:
        """Queue one call and return its result once its batch has run."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(key, payload, future))
        if self.draining is None or self.draining.done():
            self.draining = asyncio.create_task(self.drain())
        return await future

    def take(self) -> list[_Waiting[P, R]]:
        """Remove and return the next batch: the oldest call and its equals."""
        self.waiting = [w for w in self.waiting if not w.future.done()]  # cancelled callers
        if not self.waiting:
            return []
        key, limit = self.waiting[0].key, self.max_batch()
        batch = [w for w in self.waiting if w.key == key][:limit]
        taken = {id(w) for w in batch}
        self.waiting = [w for w in self.waiting if id(w) not in taken]
        return batch

    async def drain(self) -> None:
        """Run batches until nothing waits."""
        await asyncio.sleep(0)  # let calls made in the same loop turn join the first batch
        while batch := self.take():
            self.sizes[len(batch)] += 1
            try:
                results = await self.run([w.payload for w in batch])
            except Exception as exc:  # handed to every caller of the batch
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(exc)
                continue
            for w, result in zip(batch, results, strict=True):
                if not w.future.done():
                    w.future.set_result(result)


_BATCHERS: weakref.WeakKeyDictionary[Any, dict[int, Batcher[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def for_loop(owner: Any, make: Callable[[], Batcher[P, R]]) -> Batcher[P, R]:
    """Return ``owner``'s batcher for the running event loop, making it on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _BATCHERS.setdefault(loop, {})
    if id(owner) not in per_loop:
        per_loop[id(owner)] = make()
    return per_loop[id(owner)]


def all_sizes() -> Counter[int]:
    """Return how many batches of each size the batchers of live event loops have run."""
    total: Counter[int] = Counter()
    for per_loop in _BATCHERS.values():
        for batcher in per_loop.values():
            total.update(batcher.sizes)
    return total
