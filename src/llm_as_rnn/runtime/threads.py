"""How many threads PyTorch's operators use on the torch thread (``runtime.local``).

``LLM_AS_RNN_TORCH_THREADS=N`` fixes it. Unset, it follows the machine:
before each piece of torch work (at most every ``SAMPLE_EVERY_S``), the
count of runnable threads the kernel reports (``/proc/loadavg``, an instant
count, not an average) is read, this process's own runnable threads
(``/proc/self/task``: a pool's threads spin for a while after each operator)
are taken off, and PyTorch gets the cores the others leave, at least one
(``choose_threads``), the others counted as their mean over the last
``WINDOW`` readings, rounded: a lasting load (busy processes) counts, a
passing kernel thread seen in one reading does not. A reading that sees
others is taken again ``RECHECK_S`` later and the fewer kept
(``others_now``): right after a pass, threads runnable for an instant made a
quiet machine read one other in most readings. Measured on the bundled 135M model on this
2-core machine (``benchmarks/threads.py``: a scored predictor pass plus a
32-token greedy generation, ``make bench``, BENCHMARKS.md): quiet, 2 threads
took 1.84 s and 1 thread 2.65 s (1.4x slower); beside 4 busy-loop processes,
2 threads took 17.4 s and 1 thread 8.5 s (2.0x slower). With OpenMP the threads of each
operator wait for each other, and one that lost its core holds up the rest.
Where ``/proc/loadavg`` is missing, the 1-minute load average stands in.
"""

from __future__ import annotations

import os
import time
from collections import deque

from llm_as_rnn.runtime.engine import env_count

THREADS_ENV = "LLM_AS_RNN_TORCH_THREADS"
SAMPLE_EVERY_S = 0.5
"""Seconds between two readings of the machine's runnable threads."""
WINDOW = 3
"""Readings kept: the mean of their other runnable threads decides."""
RECHECK_S = 0.003
"""How long after a reading that saw others it is read again (``others_now``)."""


THREADS_PER_CORE_MAX = 4
"""``LLM_AS_RNN_TORCH_THREADS`` may be at most this many times the cores: beyond, each
operator's thread pool only waits for its own threads (1000 ran 2000 OS threads)."""


def torch_threads() -> int | None:
    """Return ``LLM_AS_RNN_TORCH_THREADS``, or None (follow the load); raise ``ConfigError``."""
    limit = THREADS_PER_CORE_MAX * cores()
    return env_count(
        THREADS_ENV,
        1,
        f"threads for PyTorch; this process may use {cores()} cores",
        2,
        "to follow the machine's load",
        maximum=limit,
    )


def choose_threads(cores: int, others: float) -> int:
    """Return the threads PyTorch should use: the cores ``others`` runnable threads leave, >= 1."""
    return max(1, min(cores, cores - round(others)))


def others_of(runnable: int, ours: int) -> int:
    """Return the runnable threads that are not this process's (``runnable_now``'s pair)."""
    return max(0, runnable - ours)


def cores() -> int:
    """Return the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def runnable_now() -> tuple[int, int]:
    """Return the machine's runnable threads now and how many of them are this process's.

    From ``/proc``; elsewhere the 1-minute load average, counted as others'.
    """
    try:
        with open("/proc/loadavg") as f:
            total = int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return round(os.getloadavg()[0]) + 1, 1
    ours = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                ours += f.read().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
    return total, max(ours, 1)  # at least the thread reading


def others_now() -> int:
    """Return the other runnable threads: the fewer of two readings ``RECHECK_S`` apart.

    Right after a pass, the machine's count holds threads that are runnable
    for an instant only (on a quiet machine, one more than this process's own
    in most readings taken between two tasks on the torch thread): counted as
    others, they put a quiet machine's next task on one thread (1.4x slower).
    A busy process is runnable in both readings.
    """
    first = others_of(*runnable_now())
    if not first:
        return 0
    time.sleep(RECHECK_S)
    return min(first, others_of(*runnable_now()))


class Threads:
    """The torch thread's pool size: fixed, or chosen again from the load (``adapt``)."""

    def __init__(self, fixed: int | None) -> None:
        self.fixed = fixed
        self.current = 0
        self.sampled_at = float("-inf")
        self.seen: deque[int] = deque(maxlen=WINDOW)

    def adapt(self) -> int:
        """Set the calling thread's PyTorch thread count if it should change; return it."""
        import torch

        if self.fixed is not None:
            wanted = self.fixed
        else:
            now = time.monotonic()
            if now - self.sampled_at >= SAMPLE_EVERY_S or not self.seen:
                self.sampled_at = now
                self.seen.append(others_now())
            wanted = choose_threads(cores(), sum(self.seen) / len(self.seen))
        if wanted != self.current:
            torch.set_num_threads(wanted)
            self.current = wanted
        return wanted
