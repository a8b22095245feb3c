"""The package's errors: one hierarchy an application can catch.

``LlmAsRnnError`` is the base of every error raised on purpose. Under it:

- ``ConfigError``: bad input or configuration (a flag, a ``Context`` field, an
  argument). Fix the call; nothing was written. The CLI exits with 2.
- ``DataError`` (a ``ConfigError``): a data value or file is malformed (a target
  that is not a label, a bad row). Fix the data; nothing was written.
- ``StateError``: a call out of order on a thread (``LearnerStateError``:
  predict twice, learn with no pending prediction), or on a closed learner.
  Call what the message names (``learn``, ``discard``, open a new learner).
- ``LeaseError``: another process is writing the thread (or eval unit). Retry
  later, or use another thread. The CLI exits with 2.
- ``EndpointError``: the model failed after its retries (server down, broken
  replies). Finished steps are saved: retry later to resume. The CLI exits with 1.

Warnings (the run goes on) are ``LlmAsRnnWarning``s, through ``warnings.warn``:
``MemoryFitWarning`` when an imported memory is truncated to its budget.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Literal, Self

from pydantic import ValidationError


class LlmAsRnnError(Exception):
    """Base of every error this package raises on purpose; the message says what to do."""


Words = Literal["cli", "python"]
"""Whose words a message is in: the command line's flags, or the library's arguments."""


class ConfigError(LlmAsRnnError, ValueError):
    """Bad input or configuration; the message names the problem and the fix."""

    cli: str | None = None
    """The message in the command line's words (``--thread NEW``), when it names a fix;
    ``str(error)`` is in the library's (``thread_id=NEW``). See ``worded``."""

    @classmethod
    def worded(cls, say: Callable[[Words], str]) -> Self:
        """Return the error said in Python words, with ``cli`` said in the command line's."""
        error = cls(say("python"))
        error.cli = say("cli")
        return error


def cli_message(exc: BaseException) -> str:
    """Return an error's message as the command line prints it (its flags, not arguments)."""
    return (exc.cli if isinstance(exc, ConfigError) else None) or str(exc)


class DataError(ConfigError):
    """A data value or file is malformed; the message names the value and the fix."""


class StateError(LlmAsRnnError, RuntimeError):
    """A call out of order on a thread; the message names the call to make first."""


class LearnerStateError(StateError):
    """An ``OnlineLearner`` call out of order: predict twice, learn or discard with none pending."""


class LeaseError(LlmAsRnnError):
    """Another process holds the thread's (or eval unit's) lease; retry later."""


class EndpointError(LlmAsRnnError):
    """The model failed after its retries; finished steps are saved, retry to resume."""


class LlmAsRnnWarning(UserWarning):
    """Base of this package's warnings (``warnings.warn``): the run goes on, changed as said.

    In Python they reach the application through ``warnings`` (filter them
    there); the command line prints each as one ``warning: ...`` line.
    """


class MemoryFitWarning(LlmAsRnnWarning):
    """A memory over its budget was truncated to fit (a warm start's ``initial_memory``)."""


USER_ERRORS: tuple[type[LlmAsRnnError], ...] = (ConfigError, LeaseError, StateError)
"""Errors the caller resolves (fix the input, wait, call in order): the CLI exits with 2."""


def from_validation(exc: ValidationError) -> ConfigError:
    """Return the first pydantic error as a one-line ``ConfigError`` naming the field."""
    first = exc.errors()[0]
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, ConfigError) and not first["loc"]:  # a whole model's own check
        return inner
    where = ".".join(str(part) for part in first["loc"]) or exc.title
    message = str(first["msg"]).removeprefix("Value error, ")
    return ConfigError(f"invalid {where}: {message}")


def first_line(exc: BaseException) -> str:
    """Return the first line of an error's message ("" when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def counted(n: int, noun: str) -> str:
    """Return ``n`` and a noun, plural unless n is 1 (``1 sequence``, ``2 sequences``)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe(exc: BaseException) -> str:
    """Return an error as one line: its type, then its message's first line."""
    return f"{type(exc).__name__}: {first_line(exc)}".rstrip(": ")


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise ``ConfigError`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ConfigError(f"{top} is needed here: pip install 'llm-as-rnn[{extra}]'") from None
