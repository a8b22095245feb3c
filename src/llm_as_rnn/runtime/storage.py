"""Checkpointer and trace store, opened from one database location.

- SQLite on one machine: a file path or ``sqlite:///path``. Checkpointer and
  store share the file, each on its own connection, in WAL mode with a busy
  timeout, so several processes can write different sequences at once.
- PostgreSQL beyond one machine: ``postgresql://user@host:port/db`` (extra
  ``postgres``), shared by any number of worker processes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from llm_as_rnn.errors import ConfigError, first_line
from llm_as_rnn.runtime import leases
from llm_as_rnn.runtime.secrets import public_url, register_url
from llm_as_rnn.runtime.sqlite import (
    InlineSqliteSaver,
    InlineSqliteStore,
    check_ours,
    connect,
    read_only_uri,
    tune,
    unusable,
)

LEASES: weakref.WeakKeyDictionary[BaseStore, leases.Leases] = weakref.WeakKeyDictionary()
"""The thread leases of each store ``open_storage`` opened."""

POSTGRES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    """Return whether a ``--db`` value names a PostgreSQL database."""
    return db.startswith(POSTGRES)


def sqlite_path(db: str) -> str:
    """Return the SQLite file path of a ``--db`` value, or raise ``ConfigError``."""
    if db.startswith("sqlite:///"):
        db = db.removeprefix("sqlite:///")
    elif "://" in db or db.startswith("file:"):  # SQLite would open a file: URI elsewhere
        raise ConfigError(
            f"unsupported database URL {db!r}: use a file path, sqlite:///path or "
            "postgresql://user@host:port/db"
        )
    if not db:
        raise ConfigError("empty --db: give a database file path")
    return db


def holds_threads(db: str) -> bool:
    """Return whether a ``--db`` value may already hold threads (a missing file holds none).

    A PostgreSQL database may; ``:memory:`` and a SQLite file not yet created
    do not, so a command can check a thread there without creating the file.
    """
    if is_postgres(db):
        return True
    path = sqlite_path(db)
    return path != ":memory:" and Path(path).expanduser().exists()


Opened = tuple[BaseCheckpointSaver[Any], BaseStore]
"""A database's checkpointer and trace store."""


@asynccontextmanager
async def open_storage(
    db: str | os.PathLike[str], *, read_only: bool = False
) -> AsyncIterator[Opened]:
    """Open (creating if needed) the checkpointer and store of a database.

    ``db`` is a file path (text or a ``Path``), ``sqlite:///path``, ``:memory:`` or a
    ``postgresql://`` URL. Use both with ``build_graph``::

        async with open_storage("runs.sqlite") as (checkpointer, store):
            graph = build_graph(checkpointer, store)

    SQLite files are opened in WAL mode with a busy timeout and set up one
    process at a time, so several processes may run different threads on one
    file; a bad location is a one-line ``ConfigError``.

    ``read_only=True`` is for readers (``trace``): nothing is created, set up
    or written, and a database that is missing or not ours is a ``ConfigError``
    that leaves it as it was.
    """
    db = os.fspath(db) if isinstance(db, os.PathLike) else db
    if not isinstance(db, str):
        raise ConfigError(
            f"database {db!r:.60} is not a location: give a file path, :memory: or a "
            "postgresql:// URL"
        )
    if is_postgres(db):
        register_url(db)  # its password is redacted wherever we write
        async with _open_postgres(db, read_only=read_only) as opened:
            yield opened
        return
    path = sqlite_path(db)
    opener = _read_sqlite if read_only else _open_sqlite
    async with opener(db, path) as opened:
        yield opened


@asynccontextmanager
async def _open_sqlite(db: str, path: str) -> AsyncIterator[Opened]:
    if path != ":memory:":
        location = Path(path).expanduser()
        if location.is_dir():
            raise ConfigError(f"database {db} is a directory: give a file path, e.g. {db}/runs.db")
        try:
            location.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the folder of database {db}: {first_line(exc)}"
            ) from None
    with unusable(db):
        # The checkpointer commits after each write; the store opens its own transactions.
        saver_conn, store_conn = connect(path, autocommit=False), connect(path, autocommit=True)
        lease_conn = connect(path, autocommit=True)
    try:
        saver = InlineSqliteSaver(saver_conn)
        store = InlineSqliteStore(store_conn)
        async with _setup_lock(path):
            # Switching to WAL needs an exclusive lock that the busy timeout
            # does not wait for: do it (and the schema) one process at a time.
            with unusable(db):
                tune(saver_conn)
                tune(store_conn)
                saver.setup()
                store.setup()
                tune(lease_conn)  # synchronous=NORMAL is per connection: no fsync per commit
                lease_conn.execute(leases.SCHEMA)
        LEASES[store] = leases.Leases(_sqlite_query(lease_conn))
        yield saver, store
    finally:
        saver_conn.close()
        store_conn.close()
        lease_conn.close()


@asynccontextmanager
async def _read_sqlite(db: str, path: str) -> AsyncIterator[Opened]:
    uri = read_only_uri(path, db)
    with unusable(db):
        saver_conn = connect(uri, autocommit=False, uri=True)
        store_conn = connect(uri, autocommit=True, uri=True)
    try:
        check_ours(store_conn, db)
        yield (
            InlineSqliteSaver(saver_conn, read_only=True),
            InlineSqliteStore(store_conn, read_only=True),
        )
    finally:
        saver_conn.close()
        store_conn.close()


def _sqlite_query(conn: sqlite3.Connection) -> leases.Query:
    """Run lease statements on their own autocommit connection (one statement each)."""

    async def query(sql: str, params: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], int]:
        cursor = conn.execute(sql, params)
        return cursor.fetchall(), cursor.rowcount

    return query


def leases_of(store: BaseStore | None) -> leases.Leases | None:
    """Return the thread leases of a store opened by ``open_storage`` (None for others)."""
    return LEASES.get(store) if store is not None else None


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
    import fcntl

    with open(f"{path}.lock", "a") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@asynccontextmanager
async def _open_postgres(url: str, *, read_only: bool) -> AsyncIterator[Opened]:
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
        first = first_line(exc) or type(exc).__name__
        raise ConfigError(f"cannot connect to {public_url(url)} ({first}): check --db") from None
    async with (
        lock,
        AsyncPostgresSaver.from_conn_string(url) as saver,
        AsyncPostgresStore.from_conn_string(url) as store,
    ):
        if read_only:
            # A reader runs no migrations: a database without our tables is not ours.
            cursor = await lock.execute(
                "SELECT to_regclass('store') IS NOT NULL AND to_regclass('checkpoints') IS NOT NULL"
            )
            row = await cursor.fetchone()
            if not (row and row[0]):
                raise ConfigError(
                    f"{public_url(url)} holds no llm-as-rnn tables: give the --db of a run"
                )
            yield saver, store
            return
        # Workers starting together would race in the migrations: one at a time.
        # Poll with pg_try_advisory_lock: a session blocked in pg_advisory_lock
        # would hold a snapshot that the migrations' CREATE INDEX CONCURRENTLY
        # waits for, a deadlock PostgreSQL does not detect.
        while True:
            cursor = await lock.execute("SELECT pg_try_advisory_lock(727163)")
            row = await cursor.fetchone()
            if row and row[0]:
                break
            await asyncio.sleep(0.2)
        try:
            await saver.setup()
            await store.setup()
            await lock.execute(leases.SCHEMA)
        finally:
            await lock.execute("SELECT pg_advisory_unlock(727163)")
        LEASES[store] = leases.Leases(_postgres_query(lock))
        yield saver, store


async def read_records(store: BaseStore, namespace: tuple[str, ...]) -> list[Any]:
    """Return every item value of a store namespace, in key order."""
    items = await store.asearch(namespace, limit=1_000_000)
    return [item.value for item in sorted(items, key=lambda item: item.key)]


def _postgres_query(conn: Any) -> leases.Query:
    """Run lease statements on an autocommit PostgreSQL connection."""
    guard = asyncio.Lock()  # one statement at a time on the connection

    async def query(sql: str, params: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], int]:
        async with guard:
            cursor = await conn.execute(sql.replace("?", "%s"), params)
            rows = await cursor.fetchall() if cursor.description else []
            return list(rows), cursor.rowcount

    return query
