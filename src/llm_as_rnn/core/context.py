"""Run parameters of the graph (LangGraph ``context_schema``).

Passed as ``graph.ainvoke(..., context=Context(...))`` or, from Studio and the
LangGraph SDK, as a plain dict that LangGraph coerces into this model, so every
field is validated with a message naming the field. Model specs are parsed
here, once, into ``ModelSpec`` values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from llm_as_rnn.core.memfile import MemoryFile, memory_problems
from llm_as_rnn.core.state import MAX_BUDGET, ROLES, Role
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.spec import (
    CallPolicy,
    Checked,
    Count,
    Endpoint,
    ModelSpec,
    Sampling,
    parse_spec,
)
from llm_as_rnn.tasks import ClassificationTask, Task, get_task

FeedbackMode = Literal["supervised", "judge", "deferred"]
StepMode = Literal["three-call", "fused", "lazy"]
AnswerMode = Literal["free", "choice"]
RewriteMode = Literal["full", "delta"]
PromptOrder = Literal["role-first", "memory-first"]

MAX_SEED = 2**63 - 1
"""The largest seed accepted: what every backend and database can hold."""
MAX_SECONDS = 7 * 24 * 3600.0
"""The longest timeout accepted (a week): beyond it is a typo, and overflows timers."""


def _spec(value: Any) -> Any:
    """Parse a spec string or wrap a chat model; a bad spec is a validation error."""
    if isinstance(value, str | BaseChatModel | ModelSpec):
        try:
            return parse_spec(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


ModelField = Annotated[
    ModelSpec,
    BeforeValidator(_spec),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "description": "embedded | hf:<dir>[#f.gguf] | openai:<m> | fake"}
    ),
]
"""A model: a spec string or a LangChain chat model instance, held as a ``ModelSpec``."""


def _default_sampling() -> dict[Role, Sampling]:
    # The paper samples at 0.7 / top-p 0.9; the MIMIC reproduction lowers the
    # temperature of the critic (0.3) and rewriter (0.5) for steadier memories.
    return {
        "predictor": Sampling(temperature=0.7, top_p=0.9, max_new_tokens=64),
        "critic": Sampling(temperature=0.3, top_p=0.9, max_new_tokens=128),
        # None: the rewriter may write a full memory (core.memory.output_limit).
        "rewriter": Sampling(temperature=0.5, top_p=0.9, max_new_tokens=None),
    }


def path_as_memory(text: str) -> str | None:
    """Say why a memory text that is one line naming an existing file is a mistake (None: it isn't).

    ``initial_memory`` is the memory's text: a path there would be read as a
    memory without sections, and refused for a reason that hides the mistake.
    """
    line = text.strip()
    if not line or "\n" in line or not os.path.isfile(line):
        return None
    return (
        f"initial_memory is memory text, and {line!r} names a file: to read a file use "
        "read_memory_file(path) (from llm_as_rnn)"
    )


class Context(Checked):
    """Parameters of a run: task, models per role, sampling, feedback, budget."""

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, use_attribute_docstrings=True
    )

    task: str | Task = "weather"
    """Task name (built in, or a plugin's entry point) or a ``Task`` instance."""
    model: ModelField = parse_spec("embedded")
    """Model for every role: a spec (``embedded``, ``hf:...``, ``openai:...``,
    ``fake``) or any LangChain chat model instance."""
    critic_model: ModelField | None = None
    """Model of the critic (judge) role; defaults to ``model``."""
    rewriter_model: ModelField | None = None
    """Model of the rewriter role; defaults to ``model``."""
    base_url: str | None = None
    """Base URL of an OpenAI-compatible endpoint (else ``OPENAI_BASE_URL``)."""
    tokenizer: str | None = None
    """Local Hugging Face tokenizer (dir or cached id) used to count budget
    tokens for ``openai:`` models; without it a documented approximation."""
    sampling: dict[Role, Sampling] = Field(default_factory=_default_sampling)
    """Sampling per role."""
    feedback: FeedbackMode = "supervised"
    """``supervised`` (target known), ``judge`` (LLM critic, no target) or
    ``deferred`` (pause after predicting until the target arrives)."""
    budget: Count = Field(4096, ge=1, le=MAX_BUDGET)
    """Default memory budget lambda in predictor tokens (the paper's 4096)."""
    compress_attempts: Count = Field(2, ge=0, le=10)
    """Compress calls tried when a rewrite is over budget, before truncation."""
    reask_attempts: Count = Field(1, ge=0, le=5)
    """Re-asks when an answer cannot be parsed, before the node's fallback."""
    max_attempts: Count = Field(4, ge=1, le=20)
    """Attempts per model call on transient errors (timeouts, 429, 5xx)."""
    request_timeout: float = Field(60.0, gt=0, le=MAX_SECONDS)
    """Seconds before one request to an endpoint times out (local models are
    bounded by their token limits instead)."""
    max_retry_seconds: float = Field(120.0, gt=0, le=MAX_SECONDS)
    """Upper bound on the time spent retrying one model call."""
    seed: Count | None = Field(None, ge=0, le=MAX_SEED)
    """Seed for sampling: local models draw deterministically per prompt."""
    step_mode: StepMode = "three-call"
    """``three-call`` (the paper: predict, critique, rewrite), ``fused`` (critique
    and rewrite in one call) or ``lazy`` (no rewrite after a right prediction
    while the memory is within budget)."""
    rewrite_mode: RewriteMode = "full"
    """``full`` (the paper: the rewriter writes the whole memory) or ``delta``
    (a few operations on numbered notes, applied by code; ``core.delta``)."""
    prompt_order: PromptOrder = "role-first"
    """``role-first``: each role's prompt opens with its instructions (the memory
    where that role reads it best); ``memory-first``: every prompt opens with
    the same memory block, so servers with prefix caching (vLLM, SGLang)
    reuse it across a step's calls (``prompts.memory_first``)."""
    answer_mode: AnswerMode = "free"
    """``free`` (the paper: generate, then parse) or ``choice`` (classification:
    a probability per label, scored by the model; never invalid). A backend that
    cannot score labels answers in ``free`` mode, with one warning; a task without
    a label set (regression) is refused."""
    max_shrink: float = Field(0.25, gt=0.0, lt=1.0)
    """Collapse guard: a rewrite smaller than this fraction of the old memory
    (when the old one is substantial) is rejected."""
    initial_memory: str | None = None
    """A warm start: the memory h_0 of a new thread (``--init-memory FILE``, a
    memory exported from another thread), else the task's own h_0. It must
    carry the task's sections; over the budget it is fitted at the first step.
    A ``MemoryFile`` gives its memory; a file's path is refused (the text is
    the memory: ``read_memory_file(path)`` reads a file).
    Its hash is part of the thread's identity."""
    structured: bool = True
    """Constrained memory updates: rewrite, compress and judge calls decode under their
    answer's structure (delta operations on the memory's own sections and note ids; the
    section skeleton; the judge's fields): a grammar on local models, a JSON schema on
    endpoints. False: free text, then the parser (the paper's setting)."""
    freeze: bool = False
    """Predict only (``run --freeze``: deployment; the ``rnn-frozen`` eval
    method): the memory never changes (enforcement ``frozen``). A step makes
    one predictor call (and a re-ask if its answer cannot be read), no critic,
    judge or rewriter call; a known truth is still scored, by code. Choice mode
    makes no second scoring pass with h_0, so a frozen step reports no lift."""

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | Task) -> str | Task:
        """Check a task name now (built in or a plugin's), not mid-run."""
        if isinstance(value, str):
            try:
                get_task(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _choice_needs_labels(self) -> Context:
        """Refuse choice answers for a task without a label set (they would be free text)."""
        task = get_task(self.task)
        if self.answer_mode == "choice" and not isinstance(task, ClassificationTask):
            raise ValueError(
                f"answer_mode 'choice' scores a fixed label set, and task {task.name!r} "
                f"({task.kind}) has none: use 'free' (--answer-mode free)"
            )
        return self

    @field_validator("initial_memory", mode="before")
    @classmethod
    def _memory_text(cls, value: Any) -> Any:
        """Take a ``MemoryFile``'s memory; refuse a path, or anything else, for the text."""
        if isinstance(value, MemoryFile):
            return value.memory
        if value is not None and not isinstance(value, str):
            raise ValueError(
                f"{type(value).__name__} is not a memory: give its text, a MemoryFile, "
                "or read_memory_file(path)"
            )
        if value is not None and (problem := path_as_memory(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _memory_fits_task(self) -> Context:
        """Refuse an initial memory without the task's sections (or with another task's)."""
        if self.initial_memory is not None:
            task = get_task(self.task)
            problems = memory_problems(self.initial_memory, task.sections)
            if problems:
                raise ValueError(
                    f"initial_memory does not fit task {task.name!r}: {'; '.join(problems)}"
                )
        return self

    def h0(self) -> str:
        """Return the memory a new thread starts from: ``initial_memory``, else the task's."""
        if self.initial_memory is not None:
            return self.initial_memory
        return get_task(self.task).initial_memory()

    @field_validator("sampling", mode="before")
    @classmethod
    def _merge_sampling(cls, value: Any) -> Any:
        """Fill roles missing from a partial sampling mapping with defaults."""
        if isinstance(value, dict):
            merged: dict[Any, Any] = dict(_default_sampling())
            for role, params in value.items():
                base = merged.get(role)
                if isinstance(params, dict) and isinstance(base, Sampling):
                    params = Sampling(**{**base.model_dump(), **params})
                merged[role] = params
            return merged
        return value

    def model_for(self, role: Role) -> ModelSpec:
        """Return the model serving ``role``."""
        if role == "critic" and self.critic_model is not None:
            return self.critic_model
        if role == "rewriter" and self.rewriter_model is not None:
            return self.rewriter_model
        return self.model

    def call_policy(self) -> CallPolicy:
        """Return how each model call is bounded and seeded."""
        return CallPolicy(
            timeout_s=self.request_timeout,
            max_attempts=self.max_attempts,
            max_retry_s=self.max_retry_seconds,
            seed=self.seed,
        )

    def endpoint(self) -> Endpoint:
        """Return where ``openai:`` models are served."""
        return Endpoint(self.base_url, self.request_timeout, self.tokenizer)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "budget": 4096,
        "sampling": {
            role: {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 4096} for role in ROLES
        },
        "step_mode": "three-call",
        "feedback": "supervised",
        "answer_mode": "free",
        "rewrite_mode": "full",
        "prompt_order": "role-first",
        "structured": False,
    }
}
"""Named settings. ``paper``: the paper's setting as far as it is known (its
seed text: lambda 4096; temperature 0.7, top-p 0.9 and up to 4096 new tokens
for every role; three calls per step; supervised feedback). Explicit options
override a preset's values."""


def describe_preset(name: str) -> str:
    """Return a preset's values in one line (for ``--help`` and reports)."""
    values = PRESETS[name]
    sampling = next(iter(values["sampling"].values()))
    return (
        f"budget {values['budget']}; temperature {sampling['temperature']}, top-p "
        f"{sampling['top_p']}, max new tokens {sampling['max_new_tokens']} for every role; "
        f"step mode {values['step_mode']}; feedback {values['feedback']}; "
        f"answer mode {values['answer_mode']}; rewrite mode {values['rewrite_mode']}; "
        f"prompt order {values['prompt_order']}; "
        f"structured updates {'on' if values['structured'] else 'off'}"
    )


def coerce_context(value: Context | Mapping[str, Any] | None) -> Context:
    """Return a ``Context`` from an instance, a plain dict (as Studio sends) or None."""
    if value is None:
        return Context()
    if isinstance(value, Context):
        return value
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"context {value!r:.60} is not a Context: give Context(...), a dict of its fields "
            "or None"
        )
    return make_context(**value)


def make_context(
    *,
    preset: str | None = None,
    max_new_tokens: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    **fields: Any,
) -> Context:
    """Build a context from command-line style options; one-line ``ConfigError`` if invalid.

    ``preset`` (``PRESETS``) gives defaults that the other options override
    (an option given as None is not given);
    ``max_new_tokens`` caps every role; ``timeout`` and ``retries`` also bound
    the time spent retrying one call (at least 30 s).
    """
    fields = {k: v for k, v in fields.items() if v is not None}  # None: not given
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
        fields = {**PRESETS[preset], **fields}
    if timeout is not None:
        fields["request_timeout"] = timeout
    if retries is not None:
        fields["max_attempts"] = retries
    if timeout is not None or retries is not None:
        seconds = fields.get("request_timeout", 60.0) * fields.get("max_attempts", 4)
        fields["max_retry_seconds"] = min(MAX_SECONDS, max(30.0, seconds))
    if max_new_tokens is not None:
        sampling = dict(fields.get("sampling", {}))
        fields["sampling"] = {
            role: {**sampling.get(role, {}), "max_new_tokens": max_new_tokens} for role in ROLES
        }
    return Context(**fields)
