"""Errors a user can fix: the CLI prints them as one line and exits with 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad input or configuration; the message names the problem and the fix."""
