"""A thread's identity: the settings and data its results depend on, checked on resume.

At a thread's first step its settings are recorded in the store (task,
model per role, feedback and step mode, budget, sampling, seed, guard
limits, prompts version). Resuming with other settings, or with data whose
finished steps differ from the ones recorded in the trace (an edited file,
another start), is refused with one ``ConfigError`` naming each difference,
unless the caller continues deliberately (``allow_new_settings``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.store.base import BaseStore

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.state import ROLES, Observation, StepRecord
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.tasks import get_task

PROMPTS_VERSION = "2"
"""Bump when a prompt's wording changes what a model is asked."""

KEY = "settings"
"""The store key of a thread's recorded settings."""


def settings_of(context: Context, budget: int | None = None) -> dict[str, Any]:
    """Return what a thread's results depend on, as plain JSON.

    ``budget`` is the one asked for (a run's input or ``Context.budget`` set
    explicitly); None when the thread is to keep its own.
    """
    if budget is None and "budget" in context.model_fields_set:
        budget = context.budget
    return {
        "task": get_task(context.task).name,
        "models": {role: str(context.model_for(role)) for role in ROLES},
        "feedback": context.feedback,
        "step_mode": context.step_mode,
        "answer_mode": context.answer_mode,
        "rewrite_mode": context.rewrite_mode,
        "prompt_order": context.prompt_order,
        "budget": budget,
        "sampling": {role: context.sampling[role].model_dump() for role in ROLES},
        "seed": context.seed,
        "guard": {
            "compress_attempts": context.compress_attempts,
            "reask_attempts": context.reask_attempts,
            "max_shrink": context.max_shrink,
        },
        "prompts": PROMPTS_VERSION,
    }


def differences(
    recorded: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """Return ``name: recorded -> current`` for each setting that differs (nested: a.b).

    A budget of None (keep the thread's own) differs from nothing.
    """
    out = []
    for name in sorted(set(recorded) | set(current)):
        old, new = recorded.get(name), current.get(name)
        if name == "budget" and new is None:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += differences(old, new, f"{prefix}{name}.")
        elif old != new:
            out.append(f"{prefix}{name}: {_short(old)} -> {_short(new)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def digest(value: Any) -> str:
    """Return a short, stable hash of a JSON value."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def first_changed_step(
    observations: Sequence[Observation], records: Sequence[StepRecord], context: Context
) -> int | None:
    """Return the first finished step whose input or target differs from the data given now."""
    task = get_task(context.task)
    for record, observation in zip(records, observations, strict=False):
        target = observation.get("target")
        if target is not None:
            try:
                target = task.validate_target(target)
            except ValueError:
                return record["step"]
        if record["input"] != observation["input"] or record["target"] != target:
            return record["step"]
    return None


async def check_thread(
    store: BaseStore | None,
    thread_id: str,
    context: Context,
    *,
    budget: int | None = None,
    observations: Sequence[Observation] | None = None,
    records: Sequence[StepRecord] = (),
    allow_new_settings: bool = False,
) -> dict[str, Any] | None:
    """Refuse to resume a thread run with other settings or data.

    Returns the settings to record (``record_settings``) once a step of this
    run has finished: a new thread's, or the new ones continued deliberately;
    None when the recorded ones stand. Without a store nothing is checked.
    """
    if store is None:
        return None
    current = settings_of(context, budget)
    item = await store.aget(namespaces.settings(thread_id), KEY)
    if item is None:
        return {**current, "budget": current["budget"] or context.budget}
    changed = differences(item.value, current)
    if observations is not None and (step := first_changed_step(observations, records, context)):
        changed.append(f"data: step {step} had another input or target (an edited file?)")
    if changed and not allow_new_settings:
        raise ConfigError(
            f"thread {thread_id!r} was run with other settings ({'; '.join(changed)}): "
            "use another thread (--thread), or continue it deliberately "
            "(--allow-new-settings / allow_new_settings=True)"
        )
    if not changed:
        return None
    return {**current, "budget": current["budget"] or item.value.get("budget")}


async def record_settings(
    store: BaseStore | None, thread_id: str, settings: dict[str, Any]
) -> None:
    """Record the settings a thread's steps are computed with."""
    if store is not None:
        await store.aput(namespaces.settings(thread_id), KEY, settings)
