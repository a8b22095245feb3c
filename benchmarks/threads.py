"""PyTorch threads under CPU contention: 1 thread vs one per core, quiet and oversubscribed.

The bundled SmolLM2-135M. One scored predictor pass (a weather predictor
prompt run once, then its labels scored: what choice mode does at every
step) and one greedy generation of ``NEW_TOKENS`` tokens, timed for each
thread count (1, the core count, and ``auto``: the default, chosen from the
load by ``runtime.threads.Threads`` before each task), first with no other load, then beside
2 x cores busy-loop processes started (and killed) by this script: with our
threads, about 3x as many runnable threads as cores. Within each load the
thread counts alternate, in rotating order. ``seconds[threads][busy]``: the
median seconds of the pass plus the generation (``score_seconds``,
``generate_seconds``: each alone); ``default_over_best[busy]``: the
default's seconds over the best fixed count's. Target: ``worst_default_over_best`` <= 1.10.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import common
import torch

from llm_as_rnn import get_task
from llm_as_rnn.core import choice, prompts
from llm_as_rnn.data import weather
from llm_as_rnn.runtime.backends import LabelQuery
from llm_as_rnn.runtime.local import LocalHFBackend, embedded_dir, local_backend
from llm_as_rnn.runtime.scoring import score_chunk
from llm_as_rnn.runtime.spec import EMBEDDED_GGUF, EMBEDDED_NAME
from llm_as_rnn.runtime.threads import Threads
from llm_as_rnn.testing import busy_loops

CORES = os.cpu_count() or 1
AUTO = "auto"
"""The default: the count ``runtime.threads.Threads`` chooses from the load, before each task."""
COUNTS: list[int | str] = [*sorted({1, CORES}), AUTO]
BUSY = (0, 2 * CORES)
NEW_TOKENS = common.sized(32, 8)
REPETITIONS = common.sized(3, 1)


def predictor_query() -> LabelQuery:
    """Return a weather step's predictor prompt with its labels, as choice mode scores it."""
    task = get_task("weather")
    o = weather.window(200, 1)[0]
    messages = prompts.predict_messages(
        task, task.initial_memory(), task.render_input(o["input"]), 5
    )
    return LabelQuery(messages, choice.PREFIX, [f" {label}" for label in task.labels])


def measure(
    backend: LocalHFBackend, query: LabelQuery, threads: int | str, auto: Threads
) -> tuple[float, float]:
    """Return the seconds of one scored pass and of one greedy generation at ``threads``.

    ``auto``: the default's pool size keeper, asked before each of the two
    tasks, as the torch thread asks it before each of its tasks.
    """

    def size() -> None:  # this (main) thread runs every operator here
        if threads == AUTO:
            auto.adapt()
        else:
            torch.set_num_threads(int(threads))
            auto.current = 0  # the next adapt sets its count again

    size()
    start = time.perf_counter()
    prompt, labels = backend.label_prompt(query)
    score_chunk(backend.model, prompt, labels)
    scored = time.perf_counter()
    size()
    ids = backend.tokenizer(backend.chat_prompt(query.messages), return_tensors="pt")
    with torch.no_grad():
        backend.model.generate(
            **ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False
        )
    return scored - start, time.perf_counter() - scored


def main() -> None:
    backend = local_backend(str(embedded_dir()), EMBEDDED_GGUF, EMBEDDED_NAME)
    query = predictor_query()
    auto = Threads(None)
    for threads in COUNTS:  # warm each thread count's pool once, uncounted
        measure(backend, query, threads, auto)
    parts: dict[str, dict[str, dict[str, float]]] = {
        part: {str(t): {} for t in COUNTS} for part in ("score", "generate", "total")
    }
    load: dict[str, list[float]] = {}
    for busy in BUSY:
        runs: dict[int | str, list[tuple[float, float]]] = {t: [] for t in COUNTS}
        with busy_loops(busy):
            for rep in range(REPETITIONS):
                shift = rep % len(COUNTS)
                for threads in COUNTS[shift:] + COUNTS[:shift]:
                    runs[threads].append(measure(backend, query, threads, auto))
                    score, generate = runs[threads][-1]
                    print(
                        f"  busy {busy}, {threads} threads: score {score:.2f} s, "
                        f"generate {generate:.2f} s",
                        file=sys.stderr,
                    )
            load[str(busy)] = [round(x, 2) for x in os.getloadavg()]
        for threads, times in runs.items():
            for part, values in (
                ("score", [s for s, _ in times]),
                ("generate", [g for _, g in times]),
                ("total", [s + g for s, g in times]),
            ):
                parts[part][str(threads)][str(busy)] = round(statistics.median(values), 3)
    seconds = parts["total"]
    fixed = [t for t in COUNTS if t != AUTO]
    over_best: dict[str, Any] = {
        str(b): round(seconds[AUTO][str(b)] / min(seconds[str(t)][str(b)] for t in fixed), 3)
        for b in BUSY
    }
    common.emit(
        {
            "benchmark": "threads",
            "cores": CORES,
            "new_tokens": NEW_TOKENS,
            "seconds": seconds,
            "score_seconds": parts["score"],
            "generate_seconds": parts["generate"],
            "load_average_at_end": load,
            "default_threads": AUTO,
            "default_over_best": over_best,
            "worst_default_over_best": max(over_best.values()),
            "target": "worst_default_over_best <= 1.10",
            "repetitions": REPETITIONS,
        }
    )


if __name__ == "__main__":
    main()
