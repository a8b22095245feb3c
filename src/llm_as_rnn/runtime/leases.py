"""One writer per thread: a lease row in the database, renewed while a run holds it.

A second process that asks for a held thread is refused at once, naming the
holder. A holder that died is taken over: at once when it ran on this host
(its process is gone), else once its lease expires (``TTL_S`` without a
renewal). Taking over is a compare-and-set on the holder's token, so two
processes never both win.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from llm_as_rnn.errors import LeaseError

TTL_S = 30.0
"""Seconds a lease lives without renewal (the longest wait for a dead holder elsewhere)."""

TABLE = "llm_as_rnn_leases"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (thread TEXT PRIMARY KEY, token TEXT NOT NULL, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL, since DOUBLE PRECISION NOT NULL, "
    "expires DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Holder:
    """Who holds a thread's lease."""

    token: str
    host: str
    pid: int
    since: float

    def __str__(self) -> str:
        started = datetime.fromtimestamp(self.since).strftime("%Y-%m-%d %H:%M:%S")
        return f"process {self.pid} on {self.host} (since {started})"


def me() -> Holder:
    """Return a new holder for this process (one token per run)."""
    return Holder(uuid.uuid4().hex, socket.gethostname(), os.getpid(), time.time())


def gone(holder: Holder) -> bool:
    """Return whether a holder on this host has no process any more."""
    if holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


@dataclass
class Lease:
    """A held lease: ``check`` raises once another process has taken it over."""

    thread: str
    lost_to: Holder | None = None

    def check(self) -> None:
        """Raise ``ThreadBusyError`` if the lease was lost (this process stalled past TTL)."""
        if self.lost_to is not None:
            raise ThreadBusyError(
                f"thread {self.thread!r} was taken over by {self.lost_to} while this process "
                "stalled: its finished steps are saved; let that run finish"
            )


HELD: ContextVar[Mapping[tuple[int, str], Lease]] = ContextVar(
    "llm_as_rnn_leases", default=MappingProxyType({})
)
"""The leases held by the running task and its callers (for nested ``holding``)."""

Query = Callable[[str, tuple[Any, ...]], Awaitable[tuple[list[tuple[Any, ...]], int]]]
"""Runs one SQL statement (``?`` placeholders): returns its rows and its row count."""


class Leases:
    """Thread leases in one database's ``llm_as_rnn_leases`` table."""

    def __init__(self, query: Query) -> None:
        self.query = query

    async def holder(self, thread: str) -> tuple[Holder, float] | None:
        """Return the thread's holder and the lease's expiry, if any."""
        rows, _ = await self.query(
            f"SELECT token, host, pid, since, expires FROM {TABLE} WHERE thread = ?", (thread,)
        )
        if not rows:
            return None
        token, host, pid, since, expires = rows[0]
        return Holder(token, host, int(pid), float(since)), float(expires)

    async def take(self, thread: str, mine: Holder, ttl: float = TTL_S) -> Holder | None:
        """Take the thread's lease; return the live holder instead when refused."""
        for _ in range(3):  # a lost race against a release: try again
            refused = await self.take_once(thread, mine, ttl)
            if refused is None or refused.token != mine.token:
                return refused
        return await self.take_once(thread, mine, ttl)

    async def take_once(self, thread: str, mine: Holder, ttl: float) -> Holder | None:
        """One compare-and-set attempt; ``mine`` back when the row vanished meanwhile."""
        current = await self.holder(thread)
        now = time.time()
        if current is None:
            _, count = await self.query(
                f"INSERT INTO {TABLE} (thread, token, host, pid, since, expires) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (thread) DO NOTHING",
                (thread, mine.token, mine.host, mine.pid, mine.since, now + ttl),
            )
        else:
            holder, expires = current
            if holder.token != mine.token and expires > now and not gone(holder):
                return holder
            _, count = await self.query(
                f"UPDATE {TABLE} SET token = ?, host = ?, pid = ?, since = ?, expires = ? "
                "WHERE thread = ? AND token = ?",
                (mine.token, mine.host, mine.pid, mine.since, now + ttl, thread, holder.token),
            )
        if count == 1:
            return None
        taken = await self.holder(thread)  # another process won the race
        return taken[0] if taken else mine

    async def renew(self, thread: str, mine: Holder, ttl: float = TTL_S) -> bool:
        """Extend the lease; False when another process has taken it over."""
        _, count = await self.query(
            f"UPDATE {TABLE} SET expires = ? WHERE thread = ? AND token = ?",
            (time.time() + ttl, thread, mine.token),
        )
        return count == 1

    async def release(self, thread: str, mine: Holder) -> None:
        """Give the lease up (only if still ours)."""
        await self.query(
            f"DELETE FROM {TABLE} WHERE thread = ? AND token = ?", (thread, mine.token)
        )


class ThreadBusyError(LeaseError):
    """Another live process runs this thread."""


@asynccontextmanager
async def holding(leases: Leases | None, thread: str, ttl: float = TTL_S) -> AsyncIterator[Lease]:
    """Hold a thread's lease for the block, renewing it; refuse a busy thread.

    Without leases (an in-memory store) the block runs as it is. Nested in a
    block holding the same lease (same task), it reuses that lease.
    """
    key = (id(leases), thread)
    held = HELD.get()
    if key in held:
        yield held[key]
        return
    lease = Lease(thread)
    if leases is None:
        yield lease
        return
    mine = me()
    other = await leases.take(thread, mine, ttl)
    if other is not None:
        raise ThreadBusyError(
            f"thread {thread!r} is being run by {other}: wait for it to finish, or use "
            "another thread"
        )

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await leases.renew(thread, mine, ttl):
                    current = await leases.holder(thread)
                    lease.lost_to = current[0] if current else mine
                    return
            except Exception:
                continue

    renewing = asyncio.create_task(renew())
    token = HELD.set({**held, key: lease})
    try:
        yield lease
    finally:
        HELD.reset(token)
        renewing.cancel()
        with suppress(asyncio.CancelledError):
            await renewing
        # A full disk or a lost connection must not hide the block's own error:
        # a lease that cannot be released expires after its TTL.
        with suppress(Exception):
            await leases.release(thread, mine)
