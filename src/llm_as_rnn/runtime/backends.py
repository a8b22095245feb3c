"""Chat backends: a chat model with its token counter, sampling and retries.

``ChatBackend`` wraps any LangChain chat model; ``OpenAIBackend`` (in
``runtime.endpoint``) an OpenAI-compatible endpoint through ``ChatOpenAI``;
the local Hugging Face backend is in ``runtime.local``. ``resolve`` (``runtime.resolve``) picks one
for a ``ModelSpec``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal, get_args

from langchain_core.exceptions import ContextOverflowError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from llm_as_rnn.errors import EndpointError, LlmAsRnnError, describe
from llm_as_rnn.runtime.retry import is_transient, retry
from llm_as_rnn.runtime.secrets import scrub
from llm_as_rnn.runtime.spec import CallPolicy, Sampling
from llm_as_rnn.runtime.structure import Structure
from llm_as_rnn.runtime.usage import Generation

CHARS_PER_TOKEN = 3.0
"""Approximate token count for endpoints whose tokenizer is unknown: one token
per three characters, which over-counts Llama/GPT tokenizers on English and
numbers (about four characters per token), so the budget errs on the safe side."""


Structuring = Literal[
    "grammar",
    "JSON schema",
    "ignored (server answers free text)",
    "refused -> free text",
    "ignored (backend cannot constrain)",
    "off",
]
"""How a run's memory updates were structured, in the words its summary and report print:
constrained by a grammar (local models) or a JSON schema (endpoints); free text, because
the server answered without the schema or refused it, because the backend cannot
constrain (a fake, a chat model instance), or because ``--structured off`` asked so.
Listed from the most constrained: ``least_structured`` of several processes' is the
one to report."""


def least_structured(states: Sequence[Structuring]) -> Structuring:
    """Return the least constrained of several processes' ``Structuring`` (one run's workers)."""
    return max(states, key=get_args(Structuring).index)


def approx_tokens(text: str) -> int:
    """Return the documented approximation of a text's token count."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_text(message: BaseMessage) -> str:
    """Return the text of a chat message, whatever its content layout."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def role_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Return chat messages as ``{"role", "content"}`` dicts (chat templates' input)."""
    roles = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
    return [{"role": roles[type(m)], "content": message_text(m)} for m in messages]


_WARNED: set[str] = set()


def warn_once(key: str, line: str) -> None:
    """Log the warning ``line`` once per process for ``key`` (a backend and what it lacks).

    The record carries ``key`` (its ``once`` attribute), so a process that
    gathers the logs of others (``eval --workers``) prints it once in all.
    """
    if key not in _WARNED:
        _WARNED.add(key)
        logging.getLogger("llm_as_rnn").warning("%s", line, extra={"once": key})


class RefusedError(Exception):
    """A server refused an optional feature of a call; the message is its reason, one line."""


def refuses(exc: BaseException, feature: Sequence[str]) -> bool:
    """Return whether a call's non-transient error says the server refuses ``feature``.

    ``feature``: the words naming it in request parameters and servers' errors
    (``response_format``, ``json_schema``...). Only an error that names one is a
    refusal: another 400 (a bad key, an unknown model, a prompt over the context,
    which langchain-openai raises as ``ContextOverflowError``) says nothing about
    the feature, and is raised as for any call.
    """
    if isinstance(exc, ContextOverflowError):
        return False
    text = str(exc).lower()
    return any(word.lower() in text for word in feature)


@dataclass(frozen=True)
class LabelQuery:
    """Labels to score: each continuation's log-probability after the prompt and prefix."""

    messages: list[BaseMessage]
    prefix: str
    """The answer's opening, e.g. ``"Answer:"``."""
    continuations: Sequence[str]


class ChatBackend:
    """A chat model with its token counter, sampling translation and retries."""

    name: str

    def __init__(self, chat: BaseChatModel, name: str) -> None:
        self.chat = chat
        self.name = name

    def count_tokens(self, text: str) -> int:
        """Count tokens of ``text`` (the approximation unless overridden)."""
        return approx_tokens(text)

    def prompt_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Count the tokens of a chat prompt."""
        return sum(self.count_tokens(m["content"]) + 4 for m in role_dicts(messages))

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Translate sampling into keyword arguments of ``ainvoke``."""
        return {}

    def structure_kwargs(self, structure: Structure) -> dict[str, Any]:
        """Translate a structured answer's description into keyword arguments of ``invoke``.

        This backend cannot constrain its answers: it ignores the structure
        (the caller's parser still checks the answer).
        """
        return {}

    def structuring(self) -> Structuring:
        """Say how this backend's structured calls have been constrained so far.

        A backend that passes the structure to its model (``structure_kwargs``:
        the local one) decodes under its grammar; one that does not ignores it.
        """
        if type(self).structure_kwargs is ChatBackend.structure_kwargs:
            return "ignored (backend cannot constrain)"
        return "grammar"

    def call_timeout(self, policy: CallPolicy) -> float | None:
        """Return the wall-clock bound of one attempt (None: bounded otherwise)."""
        return policy.timeout_s * 1.5

    async def label_logprobs(
        self, query: LabelQuery, policy: CallPolicy | None = None
    ) -> list[float] | None:
        """Return log p(continuation | messages, prefix) per continuation, None if unable.

        None means this backend cannot score (answers are then free text). A
        chat model object with a ``label_logprobs(messages, prefix,
        continuations)`` method (the fake models have one) is asked.
        """
        scorer = getattr(self.chat, "label_logprobs", None)
        if scorer is None:
            return None
        scores = scorer(query.messages, query.prefix, list(query.continuations))
        return None if scores is None else [float(x) for x in scores]

    async def invoke(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        """Make one attempt of the call."""
        result = await self.chat.ainvoke(messages, **kwargs)
        return result if isinstance(result, AIMessage) else AIMessage(content=str(result))

    async def generate(
        self,
        messages: list[BaseMessage],
        sampling: Sampling,
        policy: CallPolicy,
        structure: Structure | None = None,
    ) -> Generation:
        """Call the model with bounded retries on transient errors.

        ``structure``: the answer's form, constrained where the backend can.
        """
        start = time.perf_counter()
        kwargs = self.call_kwargs(sampling, policy.seed)
        if structure is not None:
            kwargs |= self.structure_kwargs(structure)
        reply, attempts = await self.attempts(messages, kwargs, policy)
        return self.generation(reply, attempts, messages, sampling, start)

    def generation(
        self,
        reply: AIMessage,
        attempts: int,
        messages: list[BaseMessage],
        sampling: Sampling,
        start: float,
    ) -> Generation:
        """Return a reply with its cost (the server's counts where it gives them)."""
        text = message_text(reply)
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        completion = int(usage.get("output_tokens") or self.count_tokens(text))
        finish = (reply.response_metadata or {}).get("finish_reason")
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("input_tokens") or self.prompt_tokens(messages)),
            completion_tokens=completion,
            latency_s=round(time.perf_counter() - start, 6),
            retries=attempts - 1,
            cut_off=self.was_cut_off(finish, completion, sampling),
        )

    async def attempts(
        self,
        messages: list[BaseMessage],
        kwargs: dict[str, Any],
        policy: CallPolicy,
        feature: Sequence[str] = (),
    ) -> tuple[AIMessage, int]:
        """Make the call, each attempt bounded by ``call_timeout``, retrying transient errors.

        Returns the reply and the number of attempts. A call that finally
        fails is an ``EndpointError`` naming the model and the last error; a
        non-transient error of the first attempt is not retried, and when it
        says the server refuses the optional ``feature`` the call uses
        (``refuses``) it is a ``RefusedError`` instead.
        """
        limit = self.call_timeout(policy)
        start = time.perf_counter()

        async def attempt() -> AIMessage:
            try:
                async with asyncio.timeout(limit) if limit is not None else nullcontext():
                    return await self.invoke(messages, kwargs)
            except Exception as exc:
                scrub(exc)  # a server's error may quote the key: hidden before it travels
                raise

        try:
            return await attempt(), 1
        except LlmAsRnnError:
            raise  # already says what to do
        except Exception as exc:
            if not is_transient(exc):
                if refuses(exc, feature):
                    raise RefusedError(describe(exc)) from exc
                raise EndpointError(f"{self.name}: {describe(exc)} (not retried)") from exc
            return await retry(attempt, exc, policy, time.perf_counter() - start, self.name)

    def was_cut_off(self, finish_reason: Any, completion_tokens: int, sampling: Sampling) -> bool:
        """Return whether an answer stopped at its token limit (the server's finish reason)."""
        return finish_reason in ("length", "max_tokens")


class CappedBackend(ChatBackend):
    """A chat model that takes ``max_tokens`` and reports a finish reason (the fake models)."""

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Pass the token limit."""
        return {"max_tokens": sampling.max_new_tokens}
