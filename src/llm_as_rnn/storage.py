"""Checkpointer and trace store, opened from one database location.

- SQLite on one machine: a file path or ``sqlite:///path``. Checkpointer and
  store share the file, each on its own connection, in WAL mode with a busy
  timeout, so several processes can write different sequences at once.
- PostgreSQL beyond one machine: ``postgresql://user@host:port/db`` (extra
  ``postgres``), shared by any number of worker processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.base import BaseStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from llm_as_rnn.errors import ConfigError

BUSY_TIMEOUT_MS = 30_000


POSTGRES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    """Return whether a ``--db`` value names a PostgreSQL database."""
    return db.startswith(POSTGRES)


def sqlite_path(db: str) -> str:
    """Return the SQLite file path of a ``--db`` value, or raise ``ConfigError``."""
    if db.startswith("sqlite:///"):
        db = db.removeprefix("sqlite:///")
    elif "://" in db:
        raise ConfigError(
            f"unsupported database URL {db!r}: use a file path, sqlite:///path or "
            "postgresql://user@host:port/db"
        )
    if not db:
        raise ConfigError("empty --db: give a database file path")
    return db


class _ImmediateSqliteStore(AsyncSqliteStore):
    """The SQLite store with write transactions that take the lock up front.

    The stock store opens deferred transactions (``BEGIN``) that read, then
    write. Under WAL, when another connection (the checkpointer, or another
    process) has written in between, the upgrade to a write lock fails at once
    with "database is locked" instead of waiting for the busy timeout.
    ``BEGIN IMMEDIATE`` takes the write lock first, so the busy timeout applies.
    """

    @asynccontextmanager
    async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[aiosqlite.Cursor]:
        if not self.is_setup:
            await self.setup()
        async with self.lock:
            if transaction:
                await self.conn.execute("BEGIN IMMEDIATE")
            async with self.conn.cursor() as cur:
                try:
                    yield cur
                except BaseException:
                    if transaction:
                        await self.conn.execute("ROLLBACK")
                    raise
                else:
                    if transaction:
                        await self.conn.execute("COMMIT")


async def _tune(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")


@asynccontextmanager
async def open_storage(
    db: str,
) -> AsyncIterator[tuple[BaseCheckpointSaver[Any], BaseStore]]:
    """Open (creating if needed) the checkpointer and store of a database."""
    if is_postgres(db):
        async with _open_postgres(db) as opened:
            yield opened
        return
    path = sqlite_path(db)
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    async with (
        aiosqlite.connect(path) as saver_conn,
        aiosqlite.connect(path, isolation_level=None) as store_conn,
    ):
        saver = AsyncSqliteSaver(saver_conn)
        store = _ImmediateSqliteStore(store_conn)
        async with _setup_lock(path):
            # Switching to WAL needs an exclusive lock that the busy timeout
            # does not wait for: do it (and the schema) one process at a time.
            await _tune(saver_conn)
            await _tune(store_conn)
            await saver.setup()
            await store.setup()
        yield saver, store


@asynccontextmanager
async def _setup_lock(path: str) -> AsyncIterator[None]:
    """Serialise WAL switch and schema setup across processes opening one file.

    The store's migrations are not atomic (two processes creating one file
    together can both add the same column), and the WAL switch fails at once
    with "database is locked" while another connection holds the file.
    """
    if path == ":memory:":
        yield
        return
    import asyncio
    import fcntl

    with open(f"{path}.lock", "a") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@asynccontextmanager
async def _open_postgres(url: str) -> AsyncIterator[tuple[BaseCheckpointSaver[Any], BaseStore]]:
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.store.postgres.aio import AsyncPostgresStore
    except ImportError:
        raise ConfigError(
            "PostgreSQL needs the postgres extra: pip install 'llm-as-rnn[postgres]'"
        ) from None
    try:
        lock = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot connect to {_safe(url)} ({first}): check --db") from None
    async with (
        lock,
        AsyncPostgresSaver.from_conn_string(url) as saver,
        AsyncPostgresStore.from_conn_string(url) as store,
    ):
        # Workers starting together would race in the migrations: one at a time.
        await lock.execute("SELECT pg_advisory_lock(727163)")
        try:
            await saver.setup()
            await store.setup()
        finally:
            await lock.execute("SELECT pg_advisory_unlock(727163)")
        yield saver, store


def _safe(url: str) -> str:
    """Return a database URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
