r"""The portable memory file: a learned memory taken out of its thread.

``memory export`` writes one; ``--init-memory`` (``Context.initial_memory``)
and ``memory edit --from-file`` read one. Everything here is pure: no model,
no database. The format (``FORMAT``, version ``VERSION``) is JSON, written
canonically (fixed key order, two-space indent, UTF-8, one final newline), so
``render(parse(data)) == data`` for every file this module wrote::

    {
      "format": "llm-as-rnn.memory",
      "version": 1,
      "memory": "## PATTERNS\n- ...",
      "sha256": "<sha256 of the memory's UTF-8 bytes>",
      "task": "weather",
      "sections": ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB"],
      "budget": 4096,
      "tokenizer": "<the model whose tokenizer counted the budget>",
      "tokens": 311,
      "origin": {"thread": "...", "step": 5, "settings": "<settings hash>"}
    }

A file whose memory no longer matches its ``sha256`` was edited by hand: it
is accepted, and marked ``edited`` so the thread records it as a human edit.
A plain text file (no JSON object) is a memory text alone, for a memory
written by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_as_rnn.core.memory import header
from llm_as_rnn.core.state import blank
from llm_as_rnn.errors import DataError

FORMAT = "llm-as-rnn.memory"
"""The ``format`` field every memory file carries."""
VERSION = 1
"""The format version this package writes and reads."""
SIGNATURE = ('{\n  "format": ' + json.dumps(FORMAT)).encode()
"""How every file ``render`` writes begins: an existing file ``export --out`` may replace."""
# A Markdown heading: hashes, a space, a title ("#1 rule" and a lone "#" are text).
_HEADER = re.compile(r"^\s*#+\s+(.*?\S)\s*#*\s*$")


def content_hash(memory: str) -> str:
    """Return the hex SHA-256 of a memory's UTF-8 bytes (the file's ``sha256``)."""
    return hashlib.sha256(memory.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MemoryFile:
    """A memory and where it comes from, as read from or written to a memory file."""

    memory: str
    """The memory text, byte for byte."""
    task: str | None = None
    """The task it was learned on (None for a plain text file)."""
    sections: tuple[str, ...] | None = None
    """That task's section names, in order (None for a plain text file)."""
    budget: int | None = None
    """Lambda of the thread it was learned in, in tokens of ``tokenizer``."""
    tokenizer: str | None = None
    """The model whose tokenizer counted ``budget`` and ``tokens``."""
    tokens: int | None = None
    """The memory's size in tokens of ``tokenizer``."""
    origin: dict[str, Any] = field(default_factory=dict)
    """Where it was exported from: ``thread``, ``step`` and ``settings`` (a hash)."""
    edited: bool = False
    """The memory no longer matches the file's hash: someone changed it by hand."""
    source: str | None = field(default=None, compare=False)
    """The name of the file it was read from (``core.warm.read_memory_file``); not
    part of the file's content, so not written by ``render``."""

    @property
    def sha256(self) -> str:
        """Return the memory's content hash."""
        return content_hash(self.memory)


def render(memory_file: MemoryFile) -> str:
    """Return a memory file's canonical JSON text (what ``export`` writes)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "memory": memory_file.memory,
        "sha256": memory_file.sha256,
        "task": memory_file.task,
        "sections": list(memory_file.sections) if memory_file.sections is not None else None,
        "budget": memory_file.budget,
        "tokenizer": memory_file.tokenizer,
        "tokens": memory_file.tokens,
        "origin": memory_file.origin,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def parse(text: str, where: str = "memory file") -> MemoryFile:
    """Read a memory file's text, or raise a one-line ``DataError`` naming ``where``.

    A JSON object must be a memory file of a known version; any other text is
    a memory alone. A memory whose hash differs from the file's is ``edited``.
    """
    if not text.lstrip().startswith("{"):
        if blank(text):
            raise DataError(f"{where} is empty: give a memory file (memory export) or its text")
        return MemoryFile(memory=text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{where} is not valid JSON ({exc.msg}, line {exc.lineno}): give a file "
            "written by `llm-as-rnn memory export`, or the memory as plain text"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError(
            f'{where} is JSON but not a memory file (no "format": {json.dumps(FORMAT)}): '
            "give a file written by `llm-as-rnn memory export`"
        )
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # true and 1.0 equal 1 in Python
        raise DataError(
            f"{where} has format version {version!r}, and this llm-as-rnn reads version "
            f"{VERSION}: export it again with this version, or upgrade llm-as-rnn"
        )
    memory = document.get("memory")
    if not isinstance(memory, str) or blank(memory):
        raise DataError(f'{where} holds no memory text (its "memory" field): export it again')
    try:  # JSON escapes can spell lone surrogates, which no UTF-8 file or hash can hold
        memory.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f'{where}: its "memory" is not valid Unicode: export it again') from None
    sections = document.get("sections")
    if sections is not None and (
        not isinstance(sections, list) or not all(isinstance(s, str) for s in sections)
    ):
        raise DataError(f'{where}: "sections" must be a list of section names')
    origin = document.get("origin")
    origin = {} if origin is None else origin
    if not isinstance(origin, dict):
        raise DataError(f'{where}: "origin" must be an object (thread, step, settings)')
    return MemoryFile(
        memory=memory,
        task=_optional(document, "task", str, where),
        sections=tuple(sections) if sections is not None else None,
        budget=_optional(document, "budget", int, where),
        tokenizer=_optional(document, "tokenizer", str, where),
        tokens=_optional(document, "tokens", int, where),
        origin=origin,
        edited=document.get("sha256") != content_hash(memory),
    )


def _optional(document: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = document.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise DataError(f"{where}: {key!r} must be {kind.__name__}, not {value!r:.40}")
    return value


def memory_problems(memory: str, sections: Sequence[str]) -> list[str]:
    """Return why a given memory text cannot be a memory of these sections ([] if it can).

    A memory brought from outside (an import, a human edit) must be non-blank,
    carry every section header (``## NAME``) and no header of another section:
    the same shape a rewrite must have. Its size is checked against the budget
    by the caller, which knows the tokenizer.
    """
    if blank(memory):
        return ["the memory is empty"]
    problems = []
    missing = [name for name in sections if header(name) not in memory.splitlines()]
    if missing:
        problems.append("missing sections: " + ", ".join(missing))
    known = {name.upper() for name in sections}
    foreign = [
        title
        for line in memory.splitlines()
        if (match := _HEADER.match(line)) and (title := match.group(1)).upper() not in known
    ]
    if foreign:
        problems.append("sections of another task: " + ", ".join(dict.fromkeys(foreign)))
    return problems


def check_for_task(memory_file: MemoryFile, task: str, sections: Sequence[str]) -> None:
    """Raise a one-line ``DataError`` when a memory file does not fit this task.

    Refused: a file exported from another task, or one whose sections are not
    this task's (in order), or a memory that lacks or adds a section.
    """
    if memory_file.task is not None and memory_file.task != task:
        raise DataError(
            f"the memory file was learned on task {memory_file.task!r}, not {task!r}: "
            f"give a memory of task {task!r} (or run --task {memory_file.task})"
        )
    if memory_file.sections is not None and tuple(memory_file.sections) != tuple(sections):
        raise DataError(
            f"the memory file's sections ({', '.join(memory_file.sections)}) are not task "
            f"{task!r}'s ({', '.join(sections)}): give a memory with these sections"
        )
    problems = memory_problems(memory_file.memory, sections)
    if problems:
        raise DataError(
            f"the memory does not fit task {task!r}: {'; '.join(problems)} (every section "
            f"of {', '.join(header(s) for s in sections)} on a line of its own)"
        )
