"""Errors a user can fix: the CLI prints them as one line and exits with 2."""

from __future__ import annotations

import importlib
from types import ModuleType

from pydantic import ValidationError


class ConfigError(ValueError):
    """Bad input or configuration; the message names the problem and the fix."""


def from_validation(exc: ValidationError) -> ConfigError:
    """Return the first pydantic error as a one-line ``ConfigError`` naming the field."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return ConfigError(f"invalid {where}: {message}")


def first_line(exc: BaseException) -> str:
    """Return the first line of an error's message ("" when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


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
