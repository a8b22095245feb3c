r"""The portable memory file: a learned memory taken out of its thread.

``memory export`` writes one; ``--init-memory`` (``Context.initial_memory``)
and ``memory edit --from-file`` read one (``core.warm.read_memory_file``).
Everything here is pure: no model, no database, no file. The format
(``FORMAT``, version ``VERSION``) is JSON, written canonically (fixed key
order, two-space indent, UTF-8, one final newline), so
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

A memory no longer matching its ``sha256`` was edited by hand: accepted, marked
``edited``. A text that is not JSON is a memory text alone; other JSON is refused.
A memory brought in (import, edit) must have the task's shape (``memory_problems``)
and is stored ``canonical``, as the model's memories are: an unchanged edit is
seen as unchanged, and export, import, export gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_as_rnn.core.state import MAX_BUDGET, blank, thread_name
from llm_as_rnn.errors import ConfigError, DataError, first_line
from llm_as_rnn.tasks import get_task
from llm_as_rnn.tasks.markdown import CONTROL, header, render_memory, section_of

FORMAT = "llm-as-rnn.memory"
"""The ``format`` field every memory file carries."""
VERSION = 1
"""The format version this package writes and reads."""
SIGNATURE = ('{\n  "format": ' + json.dumps(FORMAT)).encode()
"""How every file ``render`` writes begins: an existing file ``export --out`` may replace."""
MAX_BYTES = 64 * MAX_BUDGET
"""The largest memory file read (bytes): a memory of the largest budget fits many
times over, even in JSON escapes; a bigger (hostile) file is refused unread."""
MAX_ORIGINS = 16  # how many imports deep an origin's imported_from chain may go
# Markdown headings: "# title" (ATX; "#1 rule", a lone "#" are text), = or - under a line.
_HEADER = re.compile(r"^\s*#+\s+(.*?\S)\s*#*\s*$")
_UNDERLINE, _LIST_ITEM = re.compile(r"^\s*(=+|-+)\s*$"), re.compile(r"^\s*([-*+>]|\d+[.)])(\s|$)")
_HTML_HEADER = re.compile(r"<h[1-6][\s>/]", re.IGNORECASE)


def tokenizer_of(predictor: dict[str, Any]) -> str:
    """Return a memory file's ``tokenizer``: from a predictor's ``identity.model_identity``."""
    return str(predictor.get("tokenizer") or f"{predictor['kind']}:{predictor['name']}")


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
    """Where it was exported from: ``thread``, ``step``, ``settings`` (a hash) and, for a
    warm-started thread, ``imported_from`` (its h_0's origin)."""
    edited: bool = False
    """The memory no longer matches the file's hash: someone changed it by hand."""
    source: str | None = field(default=None, compare=False)
    """The name of the file it was read from (``read_memory_file``); not written."""

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

    A JSON object must be a memory file of a known version, every field of its
    type and range; other JSON (an array, a number) is refused; any other text
    is a memory alone. A memory whose hash differs from the file's is ``edited``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where} {text!r:.40} is not text: give a memory file's text")
    if len(text) > MAX_BYTES:
        raise DataError(f"{where} is over {MAX_BYTES} characters: no memory is that long")
    try:  # hostile input: deep nesting (RecursionError), a 5000-digit number (ValueError)
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if not text.lstrip().startswith(("{", "[")):
            if blank(text):
                raise DataError(
                    f"{where} is empty: give a memory file (memory export) or its text"
                ) from None
            return MemoryFile(memory=text)
        detail = (
            f"{exc.msg}, line {exc.lineno}"
            if isinstance(exc, json.JSONDecodeError)
            else first_line(exc)
            if isinstance(exc, ValueError)
            else "nested too deep"
        )
        raise DataError(
            f"{where} is not valid JSON ({detail}): give a file written by `llm-as-rnn "
            "memory export`, or the memory as plain text"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError(
            f'{where} is JSON but not a memory file (no "format": {json.dumps(FORMAT)}): '
            "give a file written by `llm-as-rnn memory export`"
        )
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # true and 1.0 equal 1 in Python
        raise DataError(
            f"{where} has format version {version!r:.40}, and this llm-as-rnn reads version "
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
        not isinstance(sections, list)
        or not sections
        or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in sections)
    ):
        raise DataError(f'{where}: "sections" must be a list of section names')
    return MemoryFile(
        memory=memory,
        task=_optional(document, "task", str, where),
        sections=tuple(sections) if sections is not None else None,
        budget=_optional(document, "budget", int, where, low=1),
        tokenizer=_optional(document, "tokenizer", str, where),
        tokens=_optional(document, "tokens", int, where, low=0),
        origin=_origin(document.get("origin"), where, MAX_ORIGINS),
        edited=document.get("sha256") != content_hash(memory),
    )


def _optional(
    document: dict[str, Any], key: str, kind: type, where: str, low: int = 0, high: int = MAX_BUDGET
) -> Any:
    """Return a field that may be null: text of 1 to 200 characters, or a whole number in range."""
    value = document.get(key)
    if value is None:
        return None
    if kind is str and isinstance(value, str) and 0 < len(value) <= 200:
        return value
    if kind is int and type(value) is int and low <= value <= high:
        return value
    wanted = "a name of 1 to 200 characters" if kind is str else f"a whole number {low}..{high}"
    raise DataError(f"{where}: {key!r} must be {wanted}, not {value!r:.40}")


def _origin(value: Any, where: str, depth: int) -> dict[str, Any]:
    """Return a checked origin: ``thread``, ``step``, ``settings`` and ``imported_from``."""
    if value is None:
        return {}
    known = {"thread", "step", "settings", "imported_from"}
    if not isinstance(value, dict) or not set(value) <= known or depth < 0:
        raise DataError(
            f'{where}: "origin" must be an object of {", ".join(sorted(known))} (at most '
            f"{MAX_ORIGINS} imports deep)"
        )
    out = dict(value)
    try:
        thread_name(out.get("thread", "-"))
    except ConfigError as exc:
        raise DataError(f'{where}: "origin": {exc}') from None
    if "step" in out:
        out["step"] = _optional(out, "step", int, f'{where}: "origin"', high=10**9)
    if "settings" in out:
        out["settings"] = _optional(out, "settings", str, f'{where}: "origin"')
    if "imported_from" in out:
        out["imported_from"] = _origin(out["imported_from"], where, depth - 1)
    return out


def _lines(memory: str) -> list[str]:
    """Return a memory's lines, line ends (CRLF, CR) and trailing whitespace dropped."""
    return [line.rstrip() for line in memory.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def memory_problems(memory: str, sections: Sequence[str], headers_only: bool = False) -> list[str]:
    """Return why a given memory text cannot be a memory of these sections ([] if it can).

    A memory brought from outside (an import, a human edit) must have the shape
    a rewrite has: every section header (``## NAME``) once, in the task's order,
    nothing before the first, and no line Markdown or the model's reader takes
    for another heading. ``headers_only``: a memory of headers and no content is
    accepted (only when the task's h_0 is one). Its size is checked against the
    budget by the caller, which knows the tokenizer.
    """
    if blank(memory):
        return ["the memory is empty"]
    if control := CONTROL.search(memory):
        return [f"the memory holds a control character ({control.group()!a}): remove it"]
    lines = _lines(memory)
    names = {name.upper(): name for name in sections}
    found = [(i, section_of(line, names)) for i, line in enumerate(lines)]
    opened = [(i, name) for i, name in found if name is not None]
    problems = []
    order = [name for _, name in opened]
    missing = [name for name in sections if name not in order]
    if missing:
        problems.append("missing sections: " + ", ".join(missing))
    twice = [name for name in dict.fromkeys(order) if order.count(name) > 1]
    if twice:
        problems.append("sections given more than once: " + ", ".join(twice))
    if not missing and not twice and order != list(sections):
        problems.append("sections out of order: " + ", ".join(order))
    loose = [lines[i] for i, name in opened if name is not None and lines[i] != header(name)]
    if loose:
        problems.append("headers not written as '## NAME': " + ", ".join(map(repr, loose)))
    if opened and any(not blank(line) for line in lines[: opened[0][0]]):
        problems.append(f"text before {header(opened[0][1] or '')}")
    foreign = [
        lines[i].strip() for i, (_, name) in enumerate(found) if not name and _heading(lines, i)
    ]
    if foreign:  # section_of found no section in them: another task's, or made up
        problems.append("headings of no section of this task: " + ", ".join(dict.fromkeys(foreign)))
    content = [line for line, (_, name) in zip(lines, found, strict=True) if name is None]
    if not problems and not headers_only and blank(content):
        problems.append("the memory has headers only, no content")
    return problems


def _heading(lines: list[str], i: int) -> bool:
    """Return whether Markdown reads line ``i`` as a heading (ATX, setext or HTML)."""
    above = lines[i - 1] if i else ""
    setext = _UNDERLINE.match(lines[i]) and not blank(above) and not _LIST_ITEM.match(above)
    return bool(_HEADER.match(lines[i]) or setext or _HTML_HEADER.search(lines[i]))


def canonical(memory: str, sections: Sequence[str]) -> str:
    """Return a memory of the task's shape as the model's memories are written (``render_memory``).

    Line ends, trailing whitespace and blank lines around sections are the
    writer's, not the memory's: dropped, so an edit that changes only them
    changes nothing.
    """
    names = {name.upper(): name for name in sections}
    bodies: dict[str, list[str]] = {}
    current: list[str] = []
    for line in _lines(memory):
        name = section_of(line, names)
        if name is not None:
            current = bodies.setdefault(name, [])
        else:
            current.append(line)
    return render_memory({name: "\n".join(body) for name, body in bodies.items()}, sections)


def check_for_task(memory_file: MemoryFile, task: str, sections: Sequence[str]) -> MemoryFile:
    """Return the memory file with its memory ``canonical``, or raise a one-line ``DataError``.

    Refused: a file exported from another task, or one whose sections are not
    this task's (in order), or a memory whose shape is not the task's
    (``memory_problems``; headers with no content only if the task's h_0 is so).
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
    h0_is_headers = bool(memory_problems(get_task(task).initial_memory(), sections))
    problems = memory_problems(memory_file.memory, sections, h0_is_headers)
    if problems:
        raise DataError(
            f"the memory does not fit task {task!r}: {'; '.join(problems)} (give "
            f"{', '.join(header(s) for s in sections)}, once each and in this order, each on "
            "a line of its own with its content under it)"
        )
    return dataclasses.replace(memory_file, memory=canonical(memory_file.memory, sections))
