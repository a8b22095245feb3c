"""Errors a user can fix: the CLI prints them as one line and exits with 2."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(ValueError):
    """Bad input or configuration; the message names the problem and the fix."""


def from_validation(exc: ValidationError) -> ConfigError:
    """Return the first pydantic error as a one-line ``ConfigError`` naming the field."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return ConfigError(f"invalid {where}: {first['msg']}")
