"""Checkpointer and trace store, opened from one database location.

- SQLite on one machine: a file path or ``sqlite:///path``. Checkpointer and
  store share the file, each on its own connection, in WAL mode with a busy
  timeout, so several processes can write different sequences at once.
- PostgreSQL beyond one machine: ``postgresql://user@host:port/db`` (extra
  ``postgres``), shared by any number of worker processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.sqlite import SqliteStore

from llm_as_rnn.errors import ConfigError, first_line
from llm_as_rnn.runtime import leases
from llm_as_rnn.runtime.secrets import public_url, register_url

LEASES: weakref.WeakKeyDictionary[BaseStore, leases.Leases] = weakref.WeakKeyDictionary()
"""The thread leases of each store ``open_storage`` opened."""

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


class _InlineSqliteSaver(SqliteSaver):
    """The SQLite checkpointer, its async methods run inline on the event loop.

    A checkpoint statement takes tens of microseconds; handing it to a worker
    thread and back, as ``AsyncSqliteSaver`` does, costs more than that
    (measured in BENCHMARKS.md). Writes are serialised by one lock either way.
    """

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.get_delta_channel_history(config=config, channels=channels)


class _InlineSqliteStore(SqliteStore):
    """The SQLite store, async on the event loop, with write-first transactions.

    The stock store opens deferred transactions (``BEGIN``) that read, then
    write. Under WAL, when another connection (another process) has written in
    between, the upgrade to a write lock fails at once with "database is
    locked" instead of waiting for the busy timeout. ``BEGIN IMMEDIATE`` takes
    the write lock first, so the busy timeout applies.
    """

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return self.batch(ops)

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        if not self.is_setup:
            self.setup()
        with self.lock:
            if transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            cur = self.conn.cursor()
            try:
                yield cur
            except BaseException:
                if transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                if transaction:
                    self.conn.execute("COMMIT")
            finally:
                cur.close()


def _connect(path: str, *, autocommit: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        check_same_thread=False,
        isolation_level=None if autocommit else "DEFERRED",
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _tune(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


@asynccontextmanager
async def open_storage(
    db: str,
) -> AsyncIterator[tuple[BaseCheckpointSaver[Any], BaseStore]]:
    """Open (creating if needed) the checkpointer and store of a database.

    ``db`` is a file path, ``sqlite:///path``, ``:memory:`` or a
    ``postgresql://`` URL. Use both with ``build_graph``::

        async with open_storage("runs.sqlite") as (checkpointer, store):
            graph = build_graph(checkpointer, store)

    SQLite files are opened in WAL mode with a busy timeout and set up one
    process at a time, so several processes may run different threads on one
    file; a bad location is a one-line ``ConfigError``.
    """
    if is_postgres(db):
        register_url(db)  # its password is redacted wherever we write
        async with _open_postgres(db) as opened:
            yield opened
        return
    path = sqlite_path(db)
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
    with _unusable(db):
        # The checkpointer commits after each write; the store opens its own transactions.
        saver_conn, store_conn = _connect(path, autocommit=False), _connect(path, autocommit=True)
        lease_conn = _connect(path, autocommit=True)
    try:
        saver = _InlineSqliteSaver(saver_conn)
        store = _InlineSqliteStore(store_conn)
        async with _setup_lock(path):
            # Switching to WAL needs an exclusive lock that the busy timeout
            # does not wait for: do it (and the schema) one process at a time.
            with _unusable(db):
                _tune(saver_conn)
                _tune(store_conn)
                saver.setup()
                store.setup()
                _tune(lease_conn)  # synchronous=NORMAL is per connection: no fsync per commit
                lease_conn.execute(leases.SCHEMA)
        LEASES[store] = leases.Leases(_sqlite_query(lease_conn))
        yield saver, store
    finally:
        saver_conn.close()
        store_conn.close()
        lease_conn.close()


def _sqlite_query(conn: sqlite3.Connection) -> leases.Query:
    """Run lease statements on their own autocommit connection (one statement each)."""

    async def query(sql: str, params: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], int]:
        cursor = conn.execute(sql, params)
        return cursor.fetchall(), cursor.rowcount

    return query


def leases_of(store: BaseStore | None) -> leases.Leases | None:
    """Return the thread leases of a store opened by ``open_storage`` (None for others)."""
    return LEASES.get(store) if store is not None else None


@contextmanager
def _unusable(db: str) -> Iterator[None]:
    """Turn SQLite's refusal of a file (not a database, unwritable) into a ``ConfigError``."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise  # another process holds it: transient
        raise ConfigError(
            f"cannot use {db} as a SQLite database ({first_line(exc)}): "
            "give another --db, or check its permissions"
        ) from None


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
        first = first_line(exc) or type(exc).__name__
        raise ConfigError(f"cannot connect to {public_url(url)} ({first}): check --db") from None
    async with (
        lock,
        AsyncPostgresSaver.from_conn_string(url) as saver,
        AsyncPostgresStore.from_conn_string(url) as store,
    ):
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
