"""What flows through the graph: the recurrent state and the records it carries.

Every value here is plain JSON (TypedDicts), so checkpoints, stores, Studio and
Postgres all serialise it without custom types. Validation of user input
happens with pydantic ``TypeAdapter`` over these same TypedDicts.

The state never grows with the sequence length: it holds the current
observation, the current memory and the last step's record only. The full
trace lives in the store (see ``nodes.rewrite``) and in checkpoint history.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired, get_args

from pydantic import AfterValidator, Field, TypeAdapter
from typing_extensions import TypedDict

from llm_as_rnn.errors import ConfigError, DataError, first_line
from llm_as_rnn.runtime.usage import Usage
from llm_as_rnn.tasks import Task

Role = Literal["predictor", "critic", "rewriter"]
RejectionKind = Literal[
    "cut off",
    "unparseable",
    "missing section",
    "empty",
    "echo",
    "drastic shrink",
    "unknown note",
    "invariant",
]
"""Why a rewrite was rejected, by where it was decided: cut off at its token cap
(the rewrite node); no readable memory or operations (``unparseable``), a
required section missing, nothing but empty sections, the prompt echoed, a
collapse (``drastic shrink``) (the collapse guard, ``core.memory.guard``);
an operation on a note the memory no longer has (``core.delta.apply``); the
memory invariant broken after fitting (the rewrite node's defensive check)."""
REJECTION_KINDS: tuple[RejectionKind, ...] = get_args(RejectionKind)
"""Every kind, in the order summaries list them."""
ROLES: tuple[Role, ...] = ("predictor", "critic", "rewriter")


MAX_BUDGET = 2**20
"""The largest memory budget accepted (tokens): beyond any model's context."""


def blank(value: Any) -> bool:
    """Return whether an input shows nothing: None, blank text, or containers of blanks.

    ``""``, ``"  "``, ``"\u200b"``, ``{}``, ``[]``, ``{"a": ""}`` and ``[None]`` are blank;
    ``0``, ``False`` and ``"0"`` are not (they are values).
    """
    if value is None:
        return True
    if isinstance(value, str):  # zero-width and control characters show nothing either
        return not any(ch.isprintable() and not ch.isspace() for ch in value)
    if isinstance(value, Mapping):
        return all(blank(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return all(blank(v) for v in value)
    return False


CUT_MARK = " [cut off]"
"""How a text that lost its end says so (a critique at its token cap, a clipped record field)."""


def clip(text: str, limit: int, *, cut_off: bool = False) -> tuple[str, bool]:
    """Return ``text`` within ``limit`` characters, and whether it lost its end.

    A text cut here, or already cut by its model at its token cap
    (``cut_off``), ends at a whole word followed by ``CUT_MARK``: a reader
    sees that it is incomplete, never a word cut in half.
    """
    if not cut_off and len(text) <= limit:
        return text, False
    room = max(0, limit - len(CUT_MARK))
    head, following = text[:room], text[room : room + 1]
    # The last word is partial when the cut fell inside it, or the model stopped in it.
    partial = head[-1:].isalnum() and (following.isalnum() if following else cut_off)
    if partial and re.search(r"\s", head.strip()):
        head = re.sub(r"\S+$", "", head)
    return (head.rstrip() + CUT_MARK) if head.strip() else CUT_MARK.strip(), True


def _shown(value: Any) -> Any:
    if blank(value):
        raise ValueError("the input is empty: give each step something to predict from")
    try:  # checkpoints, stores and Studio hold plain JSON (no NaN or infinity: not JSON)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(
            "the input is not plain JSON: give text, finite numbers, lists or mappings of them"
        ) from None
    return value


class Observation(TypedDict):
    """One timestep's input x_t and, when known, its target y_t."""

    input: Annotated[Any, AfterValidator(_shown)]
    """The task's raw input for this timestep (text or a mapping of fields)."""
    target: NotRequired[Any]
    """Ground truth; absent in judge mode or until it arrives (deferred mode)."""
    id: NotRequired[str]
    """Optional label of the timestep (a date, an admission id, ...)."""


class Prediction(TypedDict):
    """What the predictor said at this step."""

    text: str
    """The model's raw answer text."""
    answer: Any
    """The parsed answer, or None when no valid answer could be read."""
    valid: bool
    """Whether the text parsed into an answer."""
    distribution: NotRequired[dict[str, float] | None]
    """Choice mode: the probability of each label (the answer is its argmax)."""
    distribution_h0: NotRequired[dict[str, float] | None]
    """Choice mode: the same with the initial memory h_0 in place of h_{t-1}
    (the memory's lift is log p(truth) under ``distribution`` minus under this)."""


class Feedback(TypedDict):
    """The critique of a prediction: the 'semantic gradient' of the step."""

    text: str
    """Natural-language feedback handed to the rewrite."""
    source: Literal["truth", "judge"]
    """Ground-truth comparison or LLM judge."""
    correct: bool | None
    """Correctness by the task's scorer (None when no target is known)."""
    error: float | None
    """Task error (0/1 for classification, absolute error for regression)."""
    verdict: NotRequired[str | None]
    """The judge's verdict (``plausible`` / ``implausible``) in judge mode."""
    cut_off: NotRequired[bool]
    """The critique lost its end (its token cap, or ``NOTE_LIMIT``): the text
    ends with ``CUT_MARK``."""


NOTE_LIMIT = 600
"""Characters of a critique's lesson kept (a few sentences; the feedback adds its verdict)."""

REJECTED_LIMIT = 4000
"""Characters of rejected rewrites kept in their step's record (shared by the
attempts): enough to see what went wrong, and a record stays bounded
whatever the model wrote."""


Enforcement = Literal["rewrite", "compress", "evict", "truncate", "kept", "skipped", "frozen"]
"""How a step's new memory came to be (``StepRecord.enforcement``)."""

NO_REWRITE: tuple[Enforcement, ...] = ("skipped", "frozen")
"""Steps that asked for no rewrite: neither accepted nor rejected ("skipped":
lazy mode after a right prediction; "frozen": ``Context.freeze``)."""


class StepRecord(TypedDict):
    """The full record of one timestep, as written to the trace store."""

    step: int
    id: str | None
    input: Any
    target: Any
    prediction: Prediction
    feedback: Feedback
    correct: bool | None
    memory_before: str
    memory_after: str
    memory_tokens: int
    budget: int
    enforcement: Enforcement
    """How the new memory came to fit the budget ("evict": delta mode dropped
    its oldest notes; "kept": rewrite rejected; ``NO_REWRITE``: no rewrite was
    asked for)."""
    rewrite_rejected: bool
    rejection_reason: str | None
    rejection_kind: NotRequired[RejectionKind | None]
    """The kind of the last rejected attempt of a step whose rewrite was rejected
    (``REJECTION_KINDS``); None otherwise. Absent from records written before it."""
    rejected_rewrite: NotRequired[str | None]
    """What each rejected rewrite attempt said (a memory, or delta operations)
    under its reason, in ``REJECTED_LIMIT`` characters at most; None when the
    step's rewrite was not rejected."""
    usage: dict[str, Usage]
    """Per-role usage of this step."""


class DiscardRecord(TypedDict):
    """A step dropped before its truth arrived (``OnlineLearner.discard``)."""

    step: int
    """The step it would have been; the next prediction takes its place."""
    id: str | None
    input: Any
    prediction: Prediction | None
    """None when the step was cut short before its prediction."""


class MemoryEvent(TypedDict):
    """A human act on a thread's memory, held by the checkpoint it made (``core.history``)."""

    kind: Literal["rewind", "edit"]
    id: str
    """Unique per act: later checkpoints of the same run carry it no more."""
    after_step: int
    """The memory it set is the one after this step (0: h_0)."""
    at: str
    """When (UTC, ISO 8601)."""
    from_step: NotRequired[int]
    """Rewind: the step the thread had reached before."""
    branch: NotRequired[str]
    """Rewind: the old head's checkpoint id; its later records are kept under
    ``namespaces.branch(thread, branch)``."""
    memory_before: NotRequired[str]
    """Edit: the memory it replaced."""
    memory_after: NotRequired[str]
    """Edit: the memory it set (so the trace shows the diff without the checkpoint)."""


class State(TypedDict, total=False):
    """The recurrent state of one sequence (one thread)."""

    observations: list[Observation]
    """Queue of observations still to process in this run (input)."""
    budget: int
    """Token budget lambda of the memory (tokens of the predictor)."""
    memory: str
    """The hidden state h_t: a structured natural-language memory."""
    step: int
    """Number of finished timesteps on this thread."""
    current: Observation | None
    """The observation being processed."""
    prediction: Prediction | None
    """The prediction of the current step."""
    feedback: Feedback | None
    """The critique of the current step."""
    step_usage: dict[str, Usage]
    """Per-role usage of the current step."""
    usage: dict[str, Usage]
    """Per-role usage summed over all finished steps."""
    last_step: StepRecord | None
    """The record of the last finished step."""
    event: MemoryEvent | None
    """The rewind or edit that made this checkpoint (``core.history``); the
    next step clears it. Atomic with the memory it set: the source of truth."""


class InputState(TypedDict, total=False):
    """What a run accepts: observations to process, optionally a new budget."""

    observations: list[Observation]
    budget: Annotated[int, Field(ge=1, le=MAX_BUDGET, strict=True)]


RUN_INPUT = TypeAdapter(InputState)
"""Checks a run's input (``run_sequence`` and the nodes use it before any work)."""


OBSERVATION = TypeAdapter(Observation)
"""Checks one observation (``OnlineLearner.predict``)."""
OBSERVATIONS = TypeAdapter(list[Observation])


def check_targets(task: Task, observations: Sequence[Observation], *, required: bool) -> None:
    """Raise a one-line ``DataError`` for the first target ``task`` refuses (or lacks).

    ``required``: every observation must carry its target (supervised and
    deferred feedback learn from it; only the judge does without).
    """
    for n, observation in enumerate(observations):
        target = observation.get("target")
        if target is None:
            if required:
                raise DataError(
                    f"invalid observations.{n}: no target (this feedback mode learns "
                    "from the truth: give each a target, or use judge feedback)"
                )
            continue
        try:
            checked_target(task, target)
        except DataError as exc:
            raise DataError(f"invalid observations.{n}: {exc}") from None


def checked_target(task: Task, target: Any) -> Any:
    """Return the target as ``task.validate_target`` reads it, or raise ``DataError``.

    Plugins written before the hierarchy raise a plain ``ValueError``: it becomes a ``DataError``.
    """
    try:
        return task.validate_target(target)
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(first_line(exc)) from None


MAX_THREAD_NAME = 1000
"""The longest thread name accepted (characters): a name, not a payload."""


def thread_name(value: Any) -> str:
    """Return a thread name, or raise ``ConfigError`` saying what a name may be.

    Any printable text is a name (``user/42``, ``stream 1.a``, accents, emoji);
    refused: non-text, empty or blank names, control characters (a NUL, a
    newline: they break logs, file names and the CLI's one-line messages), and
    names over ``MAX_THREAD_NAME`` characters. The CLI's ``--thread`` uses it too.
    """
    if not isinstance(value, str):
        raise ConfigError(f"thread {value!r} is not a name: give text")
    if blank(value):
        raise ConfigError(f"thread {value!r} is blank: give it a name")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ConfigError(
            f"thread {value[:60]!r} holds a control character: use printable text only"
        )
    if len(value) > MAX_THREAD_NAME:
        raise ConfigError(
            f"thread name of {len(value)} characters is too long: use at most {MAX_THREAD_NAME}"
        )
    return value
