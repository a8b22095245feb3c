"""What model calls cost: one ``Generation`` per call, one ``Usage`` type, one sum.

Every total in the package (a node's calls, a step's roles, a thread's steps,
an eval's rows, the live view) is ``total`` of ``Usage`` records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from typing_extensions import TypedDict


class Usage(TypedDict):
    """Model usage, summed over calls."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    retries: int


@dataclass(frozen=True)
class Generation:
    """One model answer with its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    retries: int
    cut_off: bool = False
    """The answer stopped at its token limit (finish reason ``length``, or a
    local model reaching its cap): it may be incomplete."""

    def usage(self) -> Usage:
        """Return this call's usage."""
        return Usage(
            calls=1,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_s=self.latency_s,
            retries=self.retries,
        )


def total(usages: Iterable[Usage]) -> Usage:
    """Return the sum of usage records (zero for none)."""
    calls = prompt = completion = retries = 0
    latency = 0.0
    for u in usages:
        calls += u["calls"]
        prompt += u["prompt_tokens"]
        completion += u["completion_tokens"]
        latency += u["latency_s"]
        retries += u["retries"]
    return Usage(
        calls=calls,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_s=round(latency, 6),
        retries=retries,
    )


def of_calls(generations: Iterable[Generation]) -> Usage:
    """Return the usage of a list of calls."""
    return total(g.usage() for g in generations)


def by_role(*parts: Mapping[str, Usage]) -> dict[str, Usage]:
    """Return per-role usage summed role by role over ``parts``."""
    roles: dict[str, list[Usage]] = {}
    for part in parts:
        for role, usage in part.items():
            roles.setdefault(role, []).append(usage)
    return {role: total(usages) for role, usages in roles.items()}
