"""How many threads PyTorch's operators use on the torch thread (``runtime.local``).

``LLM_AS_RNN_TORCH_THREADS=N`` sets it; the default is 1, whatever the cores
and the load. Measured on the bundled 135M model on a 2-core machine
(``benchmarks/threads.py``: a scored predictor pass plus a 32-token greedy
generation, 3 alternated repetitions, machine load 3.5 from other jobs): 1
thread 4.0 s, 2 threads (PyTorch's default, one per core) 18.4 s; beside 4
busy-loop processes, 43 s vs 177 s. One thread won at every load and in every
repetition: with OpenMP, the threads of each operator wait for each other,
and a thread that lost its core holds up the rest, while a small model's
operators are too short to gain from splitting. A larger model on a quiet
machine with many cores may gain from more: set the variable and measure.
"""

from __future__ import annotations

import os

from llm_as_rnn.errors import ConfigError

THREADS_ENV = "LLM_AS_RNN_TORCH_THREADS"
DEFAULT_THREADS = 1


def torch_threads() -> int:
    """Return ``LLM_AS_RNN_TORCH_THREADS`` (default 1); raise ``ConfigError`` if it is bad."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            f"{THREADS_ENV} must be a positive integer (threads for PyTorch), got {raw!r}: "
            f"set it like {THREADS_ENV}=2, or unset it for the default ({DEFAULT_THREADS})"
        )
    return int(raw)


def set_torch_threads(count: int) -> None:
    """Set the calling thread's PyTorch thread count (each thread has its own OpenMP pool)."""
    import torch

    torch.set_num_threads(count)
