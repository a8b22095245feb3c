"""How ``OnlineLearner`` runs: its sync methods' event loop, one call per thread at a time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop on a daemon thread, for the sync methods."""

    def __init__(self) -> None:
        """Start the loop on its thread."""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and return its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        """Stop the loop and wait for its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class ThreadLocks:
    """One lock per (graph) thread name, held while a call writes it, in this process.

    Concurrent calls on one thread (``asyncio.gather``, OS threads on the sync
    methods) run one after the other, so the second sees what the first did.
    A lock lives while calls hold or wait for it: threads used once leave
    nothing behind, and no lock outlives the event loop it waited on.
    """

    def __init__(self) -> None:
        """Start with no thread in use."""
        self.locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Per thread in use: its lock and how many calls hold or wait for it."""

    @asynccontextmanager
    async def holding(self, name: str) -> AsyncIterator[None]:
        """Hold the lock of thread ``name`` for the block."""
        lock, users = self.locks.get(name) or (asyncio.Lock(), 0)
        self.locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self.locks[name]
            if users == 1:
                del self.locks[name]
            else:
                self.locks[name] = (lock, users - 1)
