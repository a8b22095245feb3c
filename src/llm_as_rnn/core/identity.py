"""A thread's identity: the settings and data its results depend on, checked on resume.

The identity is *derived*, not listed: every field of the run ``Context``
(``Context.model_fields``) is part of it unless it is in ``NOT_RESULTS``, a
short allow-list of fields that cannot change results (how long to wait,
how often to retry). A new field is therefore in the identity by default.
Three fields are replaced by what they resolve to:

- ``task``: the task's full definition (``task_definition``): its class, every
  public attribute (label set, synonyms, sections, unit, prompts' wording
  such as ``description`` and ``question``) and its initial memory h_0;
- ``model`` / ``critic_model`` / ``rewriter_model``: each role's resolved
  model (``model_identity``), with its endpoint and tokenizer for ``openai:``
  models, the URL without credentials;
- ``prompts``: a digest of every prompt the graph sends, each builder of
  ``core.prompts`` rendered on a fixed probe (``prompts_digest``), so a
  changed template is a changed identity without anyone bumping a version.

At a thread's first step this identity is recorded in the store. Resuming
with other settings, or with data whose finished steps differ from the ones
recorded in the trace (an edited file, another start), is refused with one
``ConfigError`` naming each difference, unless the caller continues
deliberately (``allow_new_settings``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from langgraph.store.base import BaseStore

from llm_as_rnn.core import prompts
from llm_as_rnn.core.context import Context
from llm_as_rnn.core.differences import differences, listed
from llm_as_rnn.core.memfile import content_hash
from llm_as_rnn.core.refusal import refuse
from llm_as_rnn.core.state import ROLES, Observation, Role, StepRecord
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime import namespaces
from llm_as_rnn.runtime.secrets import public_url
from llm_as_rnn.tasks import Task, get_task

KEY = "settings"
"""The store key of a thread's recorded settings."""

NOT_RESULTS = frozenset({"max_attempts", "request_timeout", "max_retry_seconds"})
"""``Context`` fields that cannot change a thread's results: patience, not settings."""

RESOLVED = frozenset({"task", "model", "critic_model", "rewriter_model", "base_url", "tokenizer"})
"""``Context`` fields replaced by what they resolve to (the task's definition,
each role's model with its endpoint and tokenizer)."""

_PROBE: dict[str, Any] = {
    "memory": "## PROBE\n- memory",
    "notes": "## PROBE\n- n1: note",
    "observation": "probe observation",
    "prediction": "Answer: probe",
    "truth": "probe truth",
    "outcome": "probe outcome",
    "feedback": "probe feedback",
    "fact": "probe fact",
    "budget": 123,
    "tokens": 456,
    "step": 7,
    "history": [  # more past steps than any builder shows, so a changed k shows too
        {"step": s, "input_text": f"probe input {s}", "target": "t", "prediction": "p"}
        for s in range(1, 9)
    ],
    "count": len,
    "limit": 10**6,
}
"""Arguments every prompt builder is rendered with for ``prompts_digest``."""


def settings_of(context: Context, budget: int | None = None) -> dict[str, Any]:
    """Return what a thread's results depend on, as plain JSON.

    Every ``Context`` field but ``NOT_RESULTS``; ``RESOLVED`` ones as what they
    resolve to. ``budget`` is the one asked for (a run's input or
    ``Context.budget`` set explicitly); None when the thread is to keep its own.
    """
    if budget is None and "budget" in context.model_fields_set:
        budget = context.budget
    task = get_task(context.task)
    fields = context.model_dump(mode="json", exclude=set(NOT_RESULTS | RESOLVED))
    if fields.get("initial_memory") is not None:  # a warm start is known by its hash
        fields["initial_memory"] = "sha256:" + content_hash(fields["initial_memory"])
    definition = task_definition(task)
    return {  # the most telling first: differences lists them in this order
        "task": definition,
        "models": {role: model_identity(context, role) for role in ROLES},
        **fields,
        "budget": budget,
        "prompts": prompts_digest(task, definition=definition),
    }


def task_definition(task: Task) -> dict[str, Any]:
    """Return a task's full definition: its class, public attributes and initial memory.

    Attributes are found, not listed: every public, non-callable attribute
    (labels, synonyms, sections, description, question, answer format, unit,
    a plugin's own), so a task that differs in any of them is another task.
    """
    attributes: dict[str, Any] = {}
    for name in dir(task):
        if name.startswith("_"):
            continue
        value = getattr(task, name)
        if not callable(value):
            attributes[name] = _plain(value)
    kind = type(task)
    return {
        "name": task.name,
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "attributes": attributes,
        "initial_memory": task.initial_memory(),
    }


def model_identity(context: Context, role: Role) -> dict[str, Any]:
    """Return the model serving ``role`` as plain JSON, without credentials.

    The spec as resolved (``fake`` and ``fake:0`` are one model); an
    ``openai:`` model adds its endpoint's URL and the tokenizer counting its
    budget tokens; a chat model instance, its class.
    """
    spec = context.model_for(role)
    out: dict[str, Any] = {
        f.name: getattr(spec, f.name)
        for f in dataclasses.fields(spec)
        if f.name not in ("chat", "text", "latency_ms")  # objects, spelling, speed
    }
    if spec.chat is not None:
        out["class"] = f"{type(spec.chat).__module__}.{type(spec.chat).__qualname__}"
    if spec.kind == "openai":
        endpoint = context.endpoint()
        url = endpoint.url()
        out["endpoint"] = public_url(url) if url else None
        out["tokenizer"] = endpoint.tokenizer
    return out


_DIGESTS: dict[tuple[Any, ...], tuple[tuple[Any, ...], str]] = {}
"""``prompts_digest``'s results: by module, task class and definition, with the
module's attribute values they were rendered from."""


def prompts_digest(
    task: Task, module: ModuleType = prompts, definition: dict[str, Any] | None = None
) -> str:
    """Return a digest of every prompt ``module`` may send for ``task``.

    Each of its builders (``*_messages``, ``reask_message*``: ``core.prompts``
    for the graph, ``evals.baselines`` for the baselines) is rendered on the
    fixed ``_PROBE`` arguments, also in memory-first order; a builder taking an
    argument the probe lacks is a ``TypeError`` (give the probe a value for it).
    Rendering every builder costs about a millisecond and every sequence's
    identity asks for it, so a result is kept for the same module, task class
    and task definition, and reused only while every attribute of the module
    (builders, templates, rules) is the very object it was rendered with.
    ``definition``: the task's ``task_definition``, when the caller has it.
    """
    values = tuple(vars(module).values())
    definition = task_definition(task) if definition is None else definition
    key = (module.__name__, type(task), json.dumps(definition, sort_keys=True))
    kept = _DIGESTS.get(key)
    if kept is not None and _identical(kept[0], values):
        return kept[1]
    result = _render_digest(task, module)
    if len(_DIGESTS) >= 256:  # bounded: tasks made on the fly (plugins, generic) come and go
        _DIGESTS.clear()
    _DIGESTS[key] = (values, result)
    return result


def _identical(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Return whether two tuples hold the very same objects, in order."""
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def _render_digest(task: Task, module: ModuleType) -> str:
    """Return ``prompts_digest``'s digest, rendering every builder of ``module`` now."""
    rendered: list[Any] = []
    for name, builder in sorted(vars(module).items()):
        if not callable(builder) or getattr(builder, "__module__", None) != module.__name__:
            continue
        if not (name.endswith("_messages") or name.startswith("reask_message")):
            continue
        try:
            out = builder(**_arguments(builder, task))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            if isinstance(exc, TypeError) and "no probe value" in str(exc):
                raise
            rendered.append([name, f"not renderable on the probe: {type(exc).__name__}"])
            continue
        if isinstance(out, tuple):  # a prompt with a figure (FHC: how many steps it dropped)
            out = out[0]
        messages = out if isinstance(out, list) else [out]
        if name.endswith("_messages"):
            messages = prompts.memory_first(messages) + messages
        rendered.append([name, [[m.type, m.content] for m in messages]])
    return digest(rendered)


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _arguments(builder: Any, task: Task) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for parameter in inspect.signature(builder).parameters.values():
        if parameter.name == "task":
            arguments["task"] = task
        elif parameter.name in _PROBE:
            arguments[parameter.name] = _PROBE[parameter.name]
        elif parameter.default is inspect.Parameter.empty and parameter.kind not in _VARIADIC:
            raise TypeError(f"prompts.{builder.__name__}: no probe value for {parameter.name!r}")
    return arguments


def _plain(value: Any) -> Any:
    """Return a value as JSON would hold it (tuples as lists, objects as text)."""
    return json.loads(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


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
        target = observation.get("target")  # checked by the caller (run_sequence)
        if target is not None:
            target = task.validate_target(target)
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
    before = await recorded_settings(store, thread_id)
    if before is None:
        return {**current, "budget": current["budget"] or context.budget}
    changed = differences(before, current)
    if observations is not None and (step := first_changed_step(observations, records, context)):
        changed.append(f"data: step {step} had another input or target (an edited file?)")
    if changed and not allow_new_settings:
        imported = await store.aget(namespaces.imported(thread_id), IMPORT_KEY)
        record = None if imported is None else imported.value
        raise refuse(thread_id, changed, before, current, record, listed(changed))
    if not changed:
        return None
    return {**current, "budget": current["budget"] or before.get("budget")}


IMPORT_KEY = "h0"
"""The store key of a warm-started thread's import (in ``namespaces.imported``)."""

PENDING = "pending"
"""The store key of the settings a thread's pending step was predicted with
(``OnlineLearner``: its ``learn`` must use the same)."""


def check_pending(
    thread_id: str, step: int, predicted: Mapping[str, Any], context: Context
) -> None:
    """Refuse (``ConfigError``) to finish a step under other settings than it was predicted with.

    ``predicted``: the settings recorded under ``PENDING``. The step's budget is in its state.
    """
    current = {k: v for k, v in settings_of(context).items() if k != "budget"}
    changed = differences({k: v for k, v in predicted.items() if k != "budget"}, current)
    if changed:
        raise ConfigError(
            f"thread {thread_id!r}'s pending step {step} was predicted with other settings "
            f"({listed(changed)}): learn it with the settings that predicted it, or discard() it"
        )


async def recorded_settings(
    store: BaseStore, thread_id: str, key: str = KEY
) -> dict[str, Any] | None:
    """Return the settings recorded for a thread (None before its first finished step).

    ``key``: ``KEY`` for the thread's finished steps, ``PENDING`` for its pending step.
    """
    item = await store.aget(namespaces.settings(thread_id), key)
    return None if item is None else dict(item.value)


async def record_settings(
    store: BaseStore | None, thread_id: str, settings: dict[str, Any], key: str = KEY
) -> None:
    """Record the settings a thread's steps (``KEY``) or pending step (``PENDING``) use."""
    if store is not None:
        await store.aput(namespaces.settings(thread_id), key, settings)


async def forget_settings(store: BaseStore, thread_id: str, key: str) -> None:
    """Drop a thread's recorded settings under ``key`` (a discarded step's ``PENDING``)."""
    await store.adelete(namespaces.settings(thread_id), key)
