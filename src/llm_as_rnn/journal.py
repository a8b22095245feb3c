"""The call journal: finished model calls of a node, replayed after a crash.

LangGraph checkpoints after each node. A node that makes several model calls
(a re-ask, compress attempts) and is killed half-way would redo all of them
on resume, with new samples. Before a node makes its second (third, ...)
call, the journal writes the calls it has finished to the store; a resumed
node replays them, so only the call in flight is made again: at most one
extra call per crash, and the same results as an uninterrupted run.

A node that makes a single call writes nothing (its checkpoint is enough), so
the common path costs one store read per node. Entries of a finished step are
deleted at the next step (the node returns which step it journaled).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from langchain_core.messages import BaseMessage
from langgraph.store.base import BaseStore, PutOp

from llm_as_rnn.context import Context, Sampling
from llm_as_rnn.models import ChatBackend, Generation


def journal_namespace(thread_id: str) -> tuple[str, ...]:
    """Return the store namespace of a thread's call journal."""
    return ("llm_as_rnn", "calls", thread_id)


def call_key(
    step: int, index: int, role: str, messages: Sequence[BaseMessage], sampling: Sampling
) -> str:
    """Return the journal key of a call: step, position in the node, and content hash."""
    payload = json.dumps(
        [role, [(m.type, m.content) for m in messages], sampling.model_dump()], sort_keys=True
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()[:24]
    return f"{step:06d}:{role}:{index:03d}:{digest}"


class Journal:
    """Journaled model calls of one node execution (a no-op without a store)."""

    def __init__(self, store: BaseStore | None, thread_id: str, step: int, role: str) -> None:
        self.store = store
        self.namespace = journal_namespace(thread_id)
        self.prefix = f"{step:06d}:{role}:"
        self.step = step
        self.index = 0
        self.replay: dict[str, Generation] | None = None
        self.unsaved: tuple[str, Generation] | None = None
        self.wrote = False

    async def _load(self) -> dict[str, Generation]:
        if self.replay is None:
            self.replay = {}
            if self.store is not None:
                first = await self.store.aget(self.namespace, f"{self.prefix}000")
                if first is not None:  # this node ran before and journaled: read it all
                    items = await self.store.asearch(self.namespace, limit=1000)
                    self.replay = {
                        i.key: Generation(**i.value)
                        for i in items
                        if i.key.startswith(f"{self.prefix}") and i.key != first.key
                    }
        return self.replay

    async def generate(
        self,
        backend: ChatBackend,
        role: str,
        messages: list[BaseMessage],
        sampling: Sampling,
        ctx: Context,
    ) -> Generation:
        """Return the journaled answer of this call, or make the call (journaling the last)."""
        key = call_key(self.step, self.index, role, messages, sampling)
        self.index += 1
        replay = await self._load()
        if key in replay:
            return replay[key]
        if self.unsaved is not None and self.store is not None:
            # A further call: persist the finished one first (index 000 marks the node).
            saved_key, saved = self.unsaved
            ops = [PutOp(self.namespace, saved_key, asdict(saved), index=False)]
            if not self.wrote:  # the marker a resumed node looks for first
                ops.append(
                    PutOp(self.namespace, f"{self.prefix}000", {"marker": True}, index=False)
                )
            await self.store.abatch(ops)
            self.wrote = True
        generation = await backend.generate(messages, sampling, ctx)
        self.unsaved = (key, generation)
        return generation


async def forget(store: BaseStore | None, thread_id: str, step: int | None) -> None:
    """Delete the journal entries of a finished step (called at the next step)."""
    if store is None or step is None:
        return
    namespace = journal_namespace(thread_id)
    items = await store.asearch(namespace, limit=1000)
    stale = [i.key for i in items if i.key < f"{step + 1:06d}"]
    if stale:
        await store.abatch([PutOp(namespace, key, None) for key in stale])
