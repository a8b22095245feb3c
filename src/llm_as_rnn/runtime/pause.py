"""A kill test's cue: stop a command at a named point so the test can SIGKILL it there.

Unset (every real run), ``at`` is one environment lookup. Set to a point's
name, the command says so on stderr and waits there until it is killed:
the same code path, stopped between two writes.
"""

from __future__ import annotations

import os
import sys
import time

VARIABLE = "LLM_AS_RNN_PAUSE_AT"
"""The environment variable naming the point to stop at (tests only)."""


def at(point: str) -> None:
    """Stop here for good when ``VARIABLE`` names ``point``; else return at once."""
    if os.environ.get(VARIABLE) != point:
        return
    print(f"paused at {point}", file=sys.stderr, flush=True)
    while True:  # until the test kills the process
        time.sleep(60)
