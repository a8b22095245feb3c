"""The call journal: a step's finished model calls, replayed after a crash.

A timestep runs as one graph run whose checkpoint is written when the run
ends (``durability="exit"``): one write per step instead of one per node. A
run killed half-way therefore restarts its step, and the journal is what
keeps that cheap and exact: every finished call of the step is in the store
before the next call starts, so the restarted step replays them and only the
call that was in flight (or the last one, finished but not yet covered by the
checkpoint) is made again. At most one extra call per crash, and the same
results as an uninterrupted run, even when sampling.

To stay cheap, a finished call is written lazily, right before the next call
of the same thread, and the store is read once per thread and process: after
that first read this process knows every entry, being the one writing them.
Entries of finished steps are deleted in batches.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from langchain_core.messages import BaseMessage
from langgraph.store.base import BaseStore, PutOp

from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.backends import ChatBackend
from llm_as_rnn.runtime.spec import CallPolicy, Sampling
from llm_as_rnn.runtime.structure import Structure
from llm_as_rnn.runtime.usage import Generation

DELETE_BATCH = 16
"""Stale entries are deleted once this many have gathered."""


def call_key(
    step: int, index: int, role: str, messages: Sequence[BaseMessage], sampling: Sampling
) -> str:
    """Return the journal key of a call: step, role, position in the node, content hash."""
    digest = hashlib.sha256(f"{role}\0{sorted(vars(sampling).items())}".encode())
    for m in messages:
        digest.update(f"\0{m.type}\0{m.content}".encode())
    return f"{step:06d}:{role}:{index:03d}:{digest.hexdigest()[:24]}"


@dataclass
class _Thread:
    """What this process knows of one thread's journal."""

    entries: dict[str, Generation]
    unsaved: str | None = None
    """The last finished call, not yet written."""
    stale: list[str] = field(default_factory=list)
    """Written entries of finished steps, waiting for a batch delete."""


_KNOWN: weakref.WeakKeyDictionary[BaseStore, dict[tuple[str, ...], _Thread]]
_KNOWN = weakref.WeakKeyDictionary()


async def _thread(store: BaseStore, namespace: tuple[str, ...]) -> _Thread:
    """Return a thread's journal, reading the store once per process."""
    threads = _KNOWN.setdefault(store, {})
    if namespace not in threads:
        items = await store.asearch(namespace, limit=10_000)
        threads[namespace] = _Thread({i.key: Generation(**i.value) for i in items})
    return threads[namespace]


class Journal:
    """Journaled model calls of one node execution (a no-op without a store)."""

    def __init__(self, store: BaseStore | None, thread_id: str, step: int) -> None:
        self.store = store
        self.namespace = namespaces.journal(thread_id)
        self.step = step
        self.index = 0

    async def generate(
        self,
        backend: ChatBackend,
        role: str,
        messages: list[BaseMessage],
        sampling: Sampling,
        policy: CallPolicy,
        structure: Structure | None = None,
    ) -> Generation:
        """Return the journaled answer of this call, or make the call (``structure``: its form)."""
        key = call_key(self.step, self.index, role, messages, sampling)
        self.index += 1
        if self.store is None:
            return await backend.generate(messages, sampling, policy, structure)
        journal = await _thread(self.store, self.namespace)
        if key in journal.entries:
            return journal.entries[key]
        if journal.unsaved is not None:  # a further call: write the finished one first
            done = journal.entries[journal.unsaved]
            # abatch runs at once; aput would queue the op for a background batcher first
            await self.store.abatch(
                [PutOp(self.namespace, journal.unsaved, asdict(done), index=False)]
            )
            journal.unsaved = None
        generation = await backend.generate(messages, sampling, policy, structure)
        journal.entries[key] = generation
        journal.unsaved = key
        return generation


async def forget(store: BaseStore | None, thread_id: str, step: int) -> None:
    """Drop the entries of steps before ``step`` (call it when a step starts)."""
    if store is None:
        return
    namespace = namespaces.journal(thread_id)
    journal = await _thread(store, namespace)
    prefix = f"{step:06d}"
    for key in [k for k in journal.entries if k < prefix]:
        del journal.entries[key]
        if key == journal.unsaved:
            journal.unsaved = None  # covered by the finished step's checkpoint
        else:
            journal.stale.append(key)
    if len(journal.stale) >= DELETE_BATCH:
        await store.abatch([PutOp(namespace, key, None) for key in journal.stale])
        journal.stale.clear()


async def clear(store: BaseStore, thread_id: str) -> None:
    """Drop every entry of a thread with no step under way (a rewind: none may be replayed).

    A step after a rewind to K has the same prompt as the old branch's step K+1:
    its old answer must not come back as the recomputed one.
    """
    namespace = namespaces.journal(thread_id)
    _KNOWN.get(store, {}).pop(namespace, None)
    items = await store.asearch(namespace, limit=10_000)
    await store.abatch([PutOp(namespace, item.key, None) for item in items])
