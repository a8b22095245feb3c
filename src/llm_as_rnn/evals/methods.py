"""How each method runs one sequence, resumably: the baselines and LLM-as-RNN.

Every finished step is committed before the next starts: LLM-as-RNN steps
as the graph's checkpoints and trace, baseline steps as one store item each.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.store.base import BaseStore

from llm_as_rnn.core.calls import journaled, predict_answer
from llm_as_rnn.core.context import Context
from llm_as_rnn.core.sequence import read_trace, run_sequence
from llm_as_rnn.evals import baselines
from llm_as_rnn.evals.config import (
    BASELINES,
    REFERENCES,
    TRANSFER_METHODS,
    EvalConfig,
    base_method,
    training_method,
)
from llm_as_rnn.evals.datasets import EvalData, EvalSequence
from llm_as_rnn.evals.records import rnn_record, step_record
from llm_as_rnn.evals.references import applies, reference_records
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.backends import ChatBackend
from llm_as_rnn.runtime.journal import forget
from llm_as_rnn.runtime.leases import Leases, ThreadBusyError, holding
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.storage import leases_of, read_records
from llm_as_rnn.runtime.usage import of_calls

Advance = Callable[[str], None]
"""Called with a method's name each time one of its steps is committed."""

Unit = tuple[EvalData, str, EvalSequence]
"""One (task data, method, sequence) to run."""


BUSY_RETRY_S = 0.5
"""How often a unit that another process is computing is tried again."""

TRAINING = "training"
"""The training thread's place of a sequence id, and its progress bar."""


def rnn_thread(task: str, method: str, sequence: str, key: str) -> str:
    """Return the thread of an LLM-as-RNN method's sequence under one settings key."""
    return ":".join(("eval", task, method, sequence, key))


def unit_name(task: str, method: str, sequence: str, key: str) -> str:
    """Return the name a unit is leased under: its thread (LLM-as-RNN) or its records."""
    if method in BASELINES:
        return ":".join(namespaces.eval_records(task, method, sequence, key))
    return rnn_thread(task, method, sequence, key)


def training_thread(cfg: EvalConfig, data: EvalData, method: str) -> str:
    """Return the thread where ``rnn`` learns ``method``'s memory on the training data."""
    observations = data.training_observations()
    key = cfg.unit_key(data.task, method, observations)
    return rnn_thread(data.task.name, method, TRAINING, key)


async def trained_memory(
    store: BaseStore, cfg: EvalConfig, data: EvalData, method: str
) -> str | None:
    """Return a transfer method's trained memory; None until its training is done."""
    cold = training_method(method)
    records = await read_trace(store, training_thread(cfg, data, cold))
    done = records and len(records) == len(data.training_observations())
    return records[-1]["memory_after"] if done else None


async def run_baseline(
    method: str,
    data: EvalData,
    seq: EvalSequence,
    ctx: Context,
    backend: ChatBackend,
    store: BaseStore,
    cfg: EvalConfig,
    key: str,
    advance: Callable[[], None],
) -> None:
    """Run (or resume) one baseline on one sequence (settings ``key``), committing each step."""
    task = data.task
    namespace = namespaces.eval_records(task.name, method, seq.id, key)
    journal_thread = unit_name(task.name, method, seq.id, key)
    done = await read_records(store, namespace)
    predictor_cap = ctx.sampling["predictor"].max_new_tokens or ctx.budget
    for index in range(len(done), len(seq.observations)):
        observation = seq.observations[index]
        text = task.render_input(observation["input"])
        dropped = None
        if method == "zero-shot":
            messages = baselines.zero_shot_messages(task, text)
        elif method == "fhc":
            limit = cfg.context_window - predictor_cap
            messages, dropped = baselines.fhc_messages(
                task, done, text, backend.count_tokens, limit
            )
        else:
            messages = baselines.memprompt_messages(task, done, text)
        await forget(store, journal_thread, index + 1)
        call = journaled(store, journal_thread, index + 1, backend, "predictor", ctx)
        prediction, gens = await predict_answer(call, backend, task, messages, ctx)
        answer = prediction["answer"] if prediction["valid"] else None
        raw = prediction["text"]
        target = task.validate_target(observation["target"])
        record = step_record(
            task,
            method,
            seq.id,
            index + 1,
            observation.get("id"),
            text,
            target,
            (answer, raw),
            {"predictor": of_calls(gens)},
            fhc_dropped=dropped,
            distribution=prediction.get("distribution"),
        )
        await store.aput(namespace, f"{index + 1:06d}", record)
        done.append(record)
        advance()


async def run_rnn(
    method: str,
    data: EvalData,
    seq: EvalSequence,
    ctx: Context,
    graph: Any,
    key: str,
    advance: Callable[[], None],
) -> None:
    """Run (or resume) LLM-as-RNN on one sequence through the graph."""
    thread = rnn_thread(data.task.name, method, seq.id, key)
    await run_sequence(
        graph, seq.observations, thread_id=thread, context=ctx, on_step=lambda _: advance()
    )


async def collect(
    store: BaseStore, datasets: list[EvalData], cfg: EvalConfig
) -> list[dict[str, Any]]:
    """Return every finished step record, in task, method, sequence, step order.

    Reference rows are computed here, from the data alone.
    """
    records: list[dict[str, Any]] = []
    for data in datasets:
        for method in cfg.report_methods():
            for seq in data.sequences:
                if method in REFERENCES:
                    if applies(data.task, method):
                        records += reference_records(data.task, method, seq.id, seq.observations)
                    continue
                memory = None
                if base_method(method) in TRANSFER_METHODS:
                    memory = await trained_memory(store, cfg, data, method)
                    if memory is None:
                        continue  # nothing ran before its training ended
                key = cfg.unit_key(data.task, method, seq.observations, memory)
                if method in BASELINES:
                    namespace = namespaces.eval_records(data.task.name, method, seq.id, key)
                    records += await read_records(store, namespace)
                else:
                    thread = rnn_thread(data.task.name, method, seq.id, key)
                    records += [
                        rnn_record(data.task, method, seq.id, r)
                        for r in await read_trace(store, thread)
                    ]
    return records


async def load_backend(cfg: EvalConfig, datasets: list[EvalData]) -> ChatBackend:
    """Load the model every method of the evaluation calls."""
    probe = cfg.context(datasets[0].task, "rnn")
    backend = await aresolve(probe.model, probe.endpoint())
    cfg.check([d.task for d in datasets], backend.count_tokens)
    return backend


def units(
    datasets: list[EvalData], methods: list[str], shard: tuple[int, int] | None
) -> list[Unit]:
    """Return the (task, method, sequence) units this worker runs (all without a shard)."""
    every = [(d, m, s) for d in datasets for m in methods for s in d.sequences]
    if shard is None:
        return every
    index, count = shard
    return every[index::count]


async def run_units(
    cfg: EvalConfig,
    datasets: list[EvalData],
    backend: ChatBackend,
    graph: Any,
    store: BaseStore,
    advance: Advance,
) -> float:
    """Run (or resume) this worker's units, ``cfg.concurrency`` at once; return seconds."""
    gate = asyncio.Semaphore(cfg.concurrency)
    leases = leases_of(store)
    trainings: dict[tuple[str, str], asyncio.Future[str]] = {}

    async def train(data: EvalData, method: str) -> str:
        cold = training_method(method)
        thread = training_thread(cfg, data, cold)
        ctx = cfg.context(data.task, cold)
        observations = data.training_observations()
        await exclusively(
            gate,
            leases,
            thread,
            lambda: run_sequence(
                graph,
                observations,
                thread_id=thread,
                context=ctx,
                on_step=lambda _: advance(TRAINING),
            ),
        )
        memory = await trained_memory(store, cfg, data, method)
        assert memory is not None  # every training step is committed
        return memory

    def trained(data: EvalData, method: str) -> Awaitable[str]:
        """Return the trained memory, learned once per task and budget in this process."""
        key = (data.task.name, training_method(method))
        if key not in trainings:
            trainings[key] = asyncio.ensure_future(train(data, method))
        return trainings[key]

    async def unit(data: EvalData, method: str, seq: EvalSequence) -> None:
        memory = None
        if base_method(method) in TRANSFER_METHODS:
            memory = await trained(data, method)  # outside the gate: training needs a slot
        ctx = cfg.context(data.task, method, memory)
        step = lambda: advance(method)  # noqa: E731
        key = cfg.unit_key(data.task, method, seq.observations, memory)
        name = unit_name(data.task.name, method, seq.id, key)
        if method in BASELINES:
            work = lambda: run_baseline(method, data, seq, ctx, backend, store, cfg, key, step)  # noqa: E731
        else:
            work = lambda: run_rnn(method, data, seq, ctx, graph, key, step)  # noqa: E731
        await exclusively(gate, leases, name, work)

    settle_heap()
    started = time.perf_counter()
    every = units(datasets, cfg.model_methods(), cfg.shard)
    tasks = [asyncio.ensure_future(unit(*u)) for u in every]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # One unit failed (a dead endpoint, say): stop the others while the database
        # is still open, and collect their outcomes, so none is left unretrieved.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return time.perf_counter() - started


async def exclusively(
    gate: asyncio.Semaphore,
    leases: Leases | None,
    name: str,
    work: Callable[[], Awaitable[Any]],
) -> None:
    """Run ``work`` in a slot of ``gate`` holding ``name``'s lease: one writer per thread.

    While another process holds it, the slot goes to other work and ``work``
    is tried again (it then resumes after the steps that process finished).
    """
    while True:
        async with gate:
            try:
                async with holding(leases, name):
                    await work()
                return
            except ThreadBusyError:
                pass
        await asyncio.sleep(BUSY_RETRY_S)


def settle_heap() -> None:
    """Move what is alive now (modules, model, datasets) out of the collector's reach.

    Python's full collections walk every live object, and LangGraph, LangChain
    and the HTTP stack make many; each walk stalls the event loop, a few times
    per hundred steps. Frozen after one last collection, they are never walked
    again (less CPU per step, fewer stalls with many sequences at once).
    """
    gc.collect()
    gc.freeze()
