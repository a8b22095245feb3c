"""SQLite connections: the inline checkpointer and store, and read-only opening.

Writers (``run``, ``eval``) share a file in WAL mode with a busy timeout.
Readers (``trace``) open it read-only and first check that it is ours, so a
wrong ``--db`` is refused without changing one byte of it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import Op, Result
from langgraph.store.sqlite import SqliteStore

from llm_as_rnn.errors import ConfigError, first_line

BUSY_TIMEOUT_MS = 30_000

HEADER = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file."""
OUR_TABLES = frozenset({"checkpoints", "store"})
"""Tables every database ``open_storage`` set up holds (a reader needs them)."""


class InlineSqliteSaver(SqliteSaver):
    """The SQLite checkpointer, its async methods run inline on the event loop.

    A checkpoint statement takes tens of microseconds; handing it to a worker
    thread and back, as ``AsyncSqliteSaver`` does, costs more than that
    (measured in BENCHMARKS.md). Writes are serialised by one lock either way.
    With ``read_only`` (a reader's) it never sets up tables.
    """

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        super().__init__(conn)
        self.is_setup = read_only

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Run ``get_tuple`` inline."""
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Run ``list`` inline."""
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Run ``put`` inline."""
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Run ``put_writes`` inline."""
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Run ``delete_thread`` inline."""
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Run ``get_delta_channel_history`` inline."""
        return self.get_delta_channel_history(config=config, channels=channels)


class InlineSqliteStore(SqliteStore):
    """The SQLite store, async on the event loop, with write-first transactions.

    The stock store opens deferred transactions (``BEGIN``) that read, then
    write. Under WAL, when another connection (another process) has written in
    between, the upgrade to a write lock fails at once with "database is
    locked" instead of waiting for the busy timeout. ``BEGIN IMMEDIATE`` takes
    the write lock first, so the busy timeout applies. A reader's store opens
    plain ``BEGIN``: it never writes, and must not wait for writers.
    """

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        super().__init__(conn)
        self.begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        self.is_setup = read_only  # a reader never creates tables

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``batch`` inline."""
        return self.batch(ops)

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        if not self.is_setup:
            self.setup()
        with self.lock:
            if transaction:
                self.conn.execute(self.begin)
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


def connect(target: str, *, autocommit: bool, uri: bool = False) -> sqlite3.Connection:
    """Open a connection with the busy timeout (``uri``: ``target`` is a ``file:`` URI)."""
    conn = sqlite3.connect(
        target,
        check_same_thread=False,
        isolation_level=None if autocommit else "DEFERRED",
        timeout=BUSY_TIMEOUT_MS / 1000,
        uri=uri,
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def tune(conn: sqlite3.Connection) -> None:
    """Switch a writer's connection to WAL, without an fsync per commit."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


@contextmanager
def unusable(db: str) -> Iterator[None]:
    """Turn SQLite's refusal of a file (not a database, unwritable) into a ``ConfigError``."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise  # another process holds it: transient
        raise ConfigError(
            f"cannot use {db} as a SQLite database ({first_line(exc)}): "
            "use another database file, or check its permissions"
        ) from None


def read_only_uri(path: str, db: str) -> str:
    """Return a ``file:`` URI that reads ``path`` and writes nothing, not even beside it.

    Refuse (``ConfigError``) a path that is missing, a folder, or not a SQLite
    file, judged from its first bytes, before SQLite opens it.
    """
    if os.path.isdir(path):
        raise ConfigError(f"database {db} is a directory: give a file path")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        raise ConfigError(f"database {db} not found: give the --db of a run") from None
    except OSError as exc:
        raise ConfigError(f"cannot read database {db}: {first_line(exc)}") from None
    if not header.startswith(HEADER):
        raise ConfigError(f"{db} is not a database (not SQLite): give the --db of a run")
    location = quote(os.path.abspath(path))
    # Byte 18 is 2 in WAL mode. Without a -wal file nobody is writing and all the
    # data is in the file; mode=ro would still create -wal and -shm files and leave
    # them behind, immutable=1 reads the file alone.
    if header[18] == 2 and not os.path.exists(f"{path}-wal"):
        return f"file:{location}?immutable=1"
    return f"file:{location}?mode=ro"


def check_ours(conn: sqlite3.Connection, db: str) -> None:
    """Refuse a SQLite file that ``open_storage`` did not set up (another program's)."""
    with unusable(db):
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    if not tables >= OUR_TABLES:
        raise ConfigError(
            f"{db} is a SQLite database of another program (no llm-as-rnn tables): "
            "give the --db of a run"
        )
