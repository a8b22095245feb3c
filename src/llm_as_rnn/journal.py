"""The call journal: finished model calls of the current step, replayed on resume.

LangGraph checkpoints after each node. A node that makes several model calls
(a re-ask, compress attempts) and is killed half-way would redo all of them
on resume, with new samples. The journal writes each finished call to the
store first, so a resumed node replays its finished calls and only the call
that was in flight is made again: at most one extra call per crash, and the
same results as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from langchain_core.messages import BaseMessage
from langgraph.store.base import BaseStore

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

    def __init__(self, store: BaseStore | None, thread_id: str, step: int) -> None:
        self.store = store
        self.namespace = journal_namespace(thread_id)
        self.step = step
        self.index = 0

    async def generate(
        self,
        backend: ChatBackend,
        role: str,
        messages: list[BaseMessage],
        sampling: Sampling,
        ctx: Context,
    ) -> Generation:
        """Return the journaled answer of this call, or make the call and journal it."""
        key = call_key(self.step, self.index, role, messages, sampling)
        self.index += 1
        if self.store is not None:
            item = await self.store.aget(self.namespace, key)
            if item is not None:
                return Generation(**item.value)
        generation = await backend.generate(messages, sampling, ctx)
        if self.store is not None:
            await self.store.aput(self.namespace, key, asdict(generation), index=False)
        return generation

    async def forget_earlier_steps(self) -> None:
        """Delete the entries of finished steps (they are in the trace already)."""
        if self.store is None:
            return
        items = await self.store.asearch(self.namespace, limit=10_000)
        for item in items:
            if item.key < f"{self.step:06d}":
                await self.store.adelete(self.namespace, item.key)
