"""Keep library chatter (warnings, progress bars, info logs) out of the user's output."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

from llm_as_rnn.errors import LlmAsRnnWarning


def quiet_libraries() -> None:
    """Silence transformers, LangGraph and HTTP logs below errors, and warnings."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # e.g. the GGUF conversion bar of transformers
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("always", category=LlmAsRnnWarning)  # ours: one line each
    for name in ("transformers", "langgraph", "httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _Stderr(logging.Handler):
    """Print a record's message alone on the current ``sys.stderr`` (a test may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def show_own_logs() -> None:
    """Print this package's warnings and info lines (``warning: ...``, ``info: ...``) on stderr.

    Each is one line, as written; the library logs them to ``llm_as_rnn`` and
    prints nothing itself, so an application decides where they go.
    """
    logger = logging.getLogger("llm_as_rnn")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
    shown = warnings.showwarning
    if getattr(shown, "ours", False):
        return

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, LlmAsRnnWarning):  # the library's warnings.warn, as a line
            logger.warning("warning: %s", message)
        else:
            shown(message, category, *args, **kwargs)

    show.ours = True  # type: ignore[attr-defined]
    warnings.showwarning = show
