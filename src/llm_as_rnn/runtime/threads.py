"""How many threads PyTorch's operators use on the torch thread (``runtime.local``).

``LLM_AS_RNN_TORCH_THREADS=N`` sets it. Unset, the count follows the load
when the torch thread starts (the model loads on it): the cores no other
process is using, ``cores - load average``, at least 1 and at most the cores.
PyTorch's default, one thread per core, collapses when the cores are busy:
OpenMP's threads wait for each other at every operator, and a thread that
lost its core holds up the rest (``benchmarks/threads.py``: see README,
"Local models: threads", for the figures that chose this rule).
"""

from __future__ import annotations

import os

from llm_as_rnn.errors import ConfigError

THREADS_ENV = "LLM_AS_RNN_TORCH_THREADS"


def auto_threads(cores: int, load: float) -> int:
    """Return the thread count for ``cores`` cores with ``load`` runnable processes elsewhere."""
    return max(1, min(cores, int(cores - load)))


def torch_threads() -> int:
    """Return ``LLM_AS_RNN_TORCH_THREADS``, or the automatic count; raise ``ConfigError`` if bad."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return auto_threads(os.cpu_count() or 1, os.getloadavg()[0])
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            f"{THREADS_ENV} must be a positive integer (threads for PyTorch), got {raw!r}: "
            f"set it like {THREADS_ENV}=1, or unset it to follow the load"
        )
    return int(raw)


def set_torch_threads(count: int) -> None:
    """Set the calling thread's PyTorch thread count (each thread has its own OpenMP pool)."""
    import torch

    torch.set_num_threads(count)
