"""What the command line prints besides its views: JSON lines and failure lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from llm_as_rnn.errors import describe


def report_failure(exc: BaseException, saved: str) -> None:
    """Print a run failure as one plain line on stderr (no wrapping, no traceback)."""
    print(f"error: {describe(exc)} -- {saved}; re-run the same command to resume", file=sys.stderr)


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on a line of stdout and flush it."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
