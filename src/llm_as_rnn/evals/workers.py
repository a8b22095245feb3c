"""Worker processes for one evaluation on one machine (``eval --workers N``).

One process's event loop tops out at a few hundred model calls per second:
the HTTP client, LangChain and LangGraph cost a few milliseconds of CPU per
call, all on one core. ``--workers N`` runs N processes, worker ``i`` being
the shard ``i/N`` of the same evaluation (the units of ``methods.units``),
all sharing its state database, as ``--shard`` workers on several machines
do. This process only shows progress and the workers' warning lines (each
line said once per process, ``warn_once``, is said once in all) and, once
every worker is done, writes the report from the database.

Workers get ready (imports, model, database) before the clock starts, as
loading the model does in one process. A worker whose parent dies exits at
once; its finished steps are committed, so re-running the command resumes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

from llm_as_rnn.core.rejections import structuring
from llm_as_rnn.errors import ConfigError, describe
from llm_as_rnn.evals.config import EvalConfig
from llm_as_rnn.evals.datasets import load_data
from llm_as_rnn.evals.methods import Advance, load_backend, run_units
from llm_as_rnn.runtime.backends import Structuring, least_structured, warn_once
from llm_as_rnn.runtime.quiet import quiet_libraries
from llm_as_rnn.runtime.secrets import redact_output

ORPHAN_CHECK_S = 0.5


class WorkerError(RuntimeError):
    """A worker process failed; the message is its one-line reason."""


async def run_workers(cfg: EvalConfig, advance: Advance) -> tuple[float, str, Structuring]:
    """Run an evaluation's units in ``cfg.workers`` processes.

    Returns the run time (from the moment every worker is ready to the last
    one done), the model's name and how its memory updates were structured
    (the least structured of the workers'). Raises ``ConfigError`` or ``WorkerError``
    with the first failing worker's reason; the other workers are stopped.
    """
    count = cfg.workers
    spawn = multiprocessing.get_context("spawn")  # no fork of a process running an event loop
    events: Any = spawn.Queue()
    go = spawn.Event()
    shares = [
        replace(
            cfg,
            shard=(i, count),
            workers=1,
            db=cfg.state_db(),
            concurrency=math.ceil(cfg.concurrency / count),
        )
        for i in range(count)
    ]
    processes = [
        spawn.Process(
            target=_worker,
            args=(share, events, go, os.getpid()),
            name=f"llm-as-rnn-eval-{i}",
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    try:
        ready = await _collect(events, processes, "ready", advance)
        go.set()
        started = time.perf_counter()
        done = await _collect(events, processes, "done", advance)
        run_s = time.perf_counter() - started
        for process in processes:
            await asyncio.to_thread(process.join)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
    return run_s, str(ready[0]), least_structured(done)


async def _collect(
    events: Any, processes: Sequence[BaseProcess], kind: str, advance: Advance
) -> list[Any]:
    """Wait for one ``kind`` event from every worker, forwarding step events."""
    got: dict[int, Any] = {}
    quiet = 0
    while len(got) < len(processes):
        try:
            event = await asyncio.to_thread(events.get, True, 0.2)
        except queue.Empty:
            gone = [p for i, p in enumerate(processes) if i not in got and p.exitcode is not None]
            quiet = quiet + 1 if gone else 0
            if quiet > 2:  # gone, and nothing left in the queue from it
                raise WorkerError(
                    f"worker {gone[0].name} exited with code {gone[0].exitcode} without a word"
                ) from None
            continue
        name, index, *rest = event
        if name == "step":
            advance(rest[0])
        elif name == "log":
            level, line, once = rest
            if once is None:
                logging.getLogger("llm_as_rnn").log(level, "%s", line)
            else:
                warn_once(once, line)
        elif name == "error":
            code, message = rest
            raise (ConfigError if code == 2 else WorkerError)(message)
        elif name == kind:
            got[index] = rest[0] if rest else None
    return [got[i] for i in sorted(got)]


class _Relay(logging.Handler):
    """Send this package's log lines to the parent process, which prints them."""

    def __init__(self, events: Any, index: int) -> None:
        super().__init__()
        self.events = events
        self.index = index

    def emit(self, record: logging.LogRecord) -> None:
        once = getattr(record, "once", None)
        self.events.put(("log", self.index, record.levelno, record.getMessage(), once))


def _worker(cfg: EvalConfig, events: Any, go: Event, parent: int) -> None:
    """Entry point of a worker process: run one shard, report over ``events``."""
    redact_output()
    quiet_libraries()
    assert cfg.shard is not None
    index, count = cfg.shard
    logger = logging.getLogger("llm_as_rnn")
    logger.addHandler(_Relay(events, index))
    logger.propagate = False  # the parent prints it
    try:
        asyncio.run(_run_share(cfg, events, go, parent))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent speaks
        return
    except ConfigError as exc:
        events.put(("error", index, 2, str(exc)))
    except Exception as exc:  # a dead endpoint after its retries, and the like
        events.put(("error", index, 1, f"worker {index + 1}/{count}: {describe(exc)}"))
    events.close()
    events.join_thread()  # deliver the last event before the process ends


async def _run_share(cfg: EvalConfig, events: Any, go: Event, parent: int) -> None:
    from llm_as_rnn.core.graph import build_graph
    from llm_as_rnn.runtime.storage import open_storage

    assert cfg.shard is not None
    index = cfg.shard[0]
    watchdog = asyncio.create_task(_exit_when_orphaned(parent))
    datasets = load_data(cfg)
    backend = await load_backend(cfg, datasets)
    async with open_storage(cfg.state_db()) as (saver, store):
        graph = build_graph(saver, store)
        events.put(("ready", index, backend.name))
        await asyncio.to_thread(go.wait)
        await run_units(
            cfg, datasets, backend, graph, store, lambda m: events.put(("step", index, m))
        )
    events.put(("done", index, await structuring(cfg.context(datasets[0].task, "rnn"))))
    watchdog.cancel()


async def _exit_when_orphaned(parent: int) -> None:
    """End this worker at once when the parent process is gone (killed, say)."""
    while True:
        await asyncio.sleep(ORPHAN_CHECK_S)
        if os.getppid() != parent:
            os._exit(1)  # like a kill: every finished step is already committed
