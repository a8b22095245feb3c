"""The refusal to resume a thread with other settings, in the caller's words.

One builder (``refuse``) says it for the command line (``--thread NEW``)
and for the library (``thread_id=NEW``): ``ConfigError.worded`` keeps both,
and each frontend prints its own. A changed ``initial_memory`` is said
plainly, naming the memory the thread started from (its import record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm_as_rnn.errors import ConfigError, Words

SPELLING: dict[str, dict[Words, str]] = {
    "new": {"cli": "--thread NEW", "python": "thread_id=NEW"},
    "allow": {"cli": "--allow-new-settings", "python": "allow_new_settings=True"},
    "memory": {"cli": "--init-memory", "python": "initial_memory"},
}
"""Each fix a refusal names, as the command line and the library spell it."""


def started_from(imported: Mapping[str, Any] | None, recorded: str | None) -> str:
    """Return the memory a thread started from, in words (its file, origin and hash)."""
    if recorded is None:
        return "the task's h_0"
    digest = recorded.removeprefix("sha256:")[:12]
    if not imported:
        return f"an imported memory (sha256 {digest})"
    origin = imported.get("origin") or {}
    about = [f"sha256 {digest}"]
    if origin.get("thread") is not None:
        about.append(f"origin thread {origin['thread']} step {origin.get('step')}")
    named = f"{imported['source']} " if imported.get("source") else ""
    return f"the imported memory {named}({', '.join(about)})"


def _give(words: Words, source: str | None) -> str:
    """Return how to give a thread its recorded memory file, in the caller's words."""
    if source is None:
        return SPELLING["memory"][words]
    return (
        f"--init-memory {source}"
        if words == "cli"
        else f"initial_memory=read_memory_file({source!r})"
    )


def _memory_hint(
    words: Words,
    before: Mapping[str, Any],
    current: Mapping[str, Any],
    imported: Mapping[str, Any] | None,
) -> str:
    """Say what a changed ``initial_memory`` means: h_0, which a thread with steps has behind it."""
    was = started_from(imported, before.get("initial_memory"))
    flag = _give(words, (imported or {}).get("source"))
    if before.get("initial_memory") is None:
        new = SPELLING["memory"][words]
        return f"it has steps from {was}, so its h_0 is behind it: {new} starts a new thread"
    if current.get("initial_memory") is None:
        return f"it started from {was}: give the same one ({flag})"
    return f"it started from {was}, and its h_0 is behind it: give that one ({flag})"


def refuse(
    thread_id: str,
    changed: Sequence[str],
    before: Mapping[str, Any],
    current: Mapping[str, Any],
    imported: Mapping[str, Any] | None,
    listed: str,
) -> ConfigError:
    """Return the refusal of a thread's other settings (``listed``: the changes, in words)."""
    memory = before.get("initial_memory") != current.get("initial_memory")

    def say(words: Words) -> str:
        hint = f"; {_memory_hint(words, before, current, imported)}" if memory else ""
        return (
            f"thread {thread_id!r} was run with other settings ({listed}{hint}): start a new "
            f"thread ({SPELLING['new'][words]}), or continue this one deliberately "
            f"({SPELLING['allow'][words]})"
        )

    return ConfigError.worded(say)
