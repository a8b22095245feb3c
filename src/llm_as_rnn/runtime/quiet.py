"""Keep library chatter (warnings, progress bars, info logs) out of the user's output."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Silence transformers, LangGraph and HTTP logs below errors, and warnings."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # e.g. the GGUF conversion bar of transformers
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "langgraph", "httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
