"""Chat backends: a chat model with its token counter, sampling and retries.

``ChatBackend`` wraps any LangChain chat model; ``OpenAIBackend`` an
OpenAI-compatible endpoint through ``ChatOpenAI``; the local Hugging Face
backend is in ``runtime.local``. ``resolve`` (``runtime.resolve``) picks one
for a ``ModelSpec``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from llm_as_rnn.errors import EndpointError, LlmAsRnnError, describe
from llm_as_rnn.runtime.retry import BadResponseError, is_transient, retry
from llm_as_rnn.runtime.secrets import scrub
from llm_as_rnn.runtime.spec import CallPolicy, Sampling
from llm_as_rnn.runtime.structure import Structure
from llm_as_rnn.runtime.usage import Generation

CHARS_PER_TOKEN = 3.0
"""Approximate token count for endpoints whose tokenizer is unknown: one token
per three characters, which over-counts Llama/GPT tokenizers on English and
numbers (about four characters per token), so the budget errs on the safe side."""


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
        assert reply is not None  # not refusable: errors raise
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
        refusable: bool = False,
    ) -> tuple[AIMessage | None, int]:
        """Make the call, each attempt bounded by ``call_timeout``, retrying transient errors.

        Returns the reply and the number of attempts. A call that finally
        fails is an ``EndpointError`` naming the model and the last error; a
        non-transient error of the first attempt is not retried, and when
        ``refusable`` (a call using an optional server feature) it is answered
        with a None reply instead.
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
                if refusable:
                    return None, 1
                raise EndpointError(f"{self.name}: {describe(exc)} (not retried)") from exc
            return await retry(attempt, exc, policy, time.perf_counter() - start, self.name)

    def was_cut_off(self, finish_reason: Any, completion_tokens: int, sampling: Sampling) -> bool:
        """Return whether an answer stopped at its token limit (the server's finish reason)."""
        return finish_reason in ("length", "max_tokens")


TOP_LOGPROBS = 20
"""Alternatives per position asked of an endpoint (OpenAI's maximum)."""


def first_token_scores(
    content: Sequence[dict[str, Any]], prefix: str, continuations: Sequence[str]
) -> list[float] | None:
    """Score labels from an endpoint's token logprobs at the answer's first token.

    ``content`` is the ``logprobs.content`` list of a chat completion (one entry
    per generated token with its ``top_logprobs``). The answer position is the
    first token after the generated text contains ``prefix`` (or the first
    token when it never does). A label's score is the log-probability of the
    longest listed alternative there that its text starts with; labels sharing
    that token split it evenly; a label with none gets the smallest listed
    probability, halved. None when the reply carries no alternatives.
    """
    marker = prefix.strip().lower()
    position, seen = 0, ""
    for index, entry in enumerate(content):
        if marker in seen.lower():
            position = index
            break
        seen += str(entry.get("token", ""))
    alternatives = content[position].get("top_logprobs") if content else None
    if not alternatives:
        return None
    top = {str(a["token"]): float(a["logprob"]) for a in alternatives}
    floor = min(top.values()) - math.log(2)
    picks: list[str | None] = []
    for continuation in continuations:
        label = continuation.strip().lower()
        matching = [t for t in top if t.strip() and label.startswith(t.strip().lower())]
        picks.append(max(matching, key=lambda t: len(t.strip())) if matching else None)
    return [floor if pick is None else top[pick] - math.log(picks.count(pick)) for pick in picks]


class CappedBackend(ChatBackend):
    """A chat model that takes ``max_tokens`` and reports a finish reason (the fake models)."""

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Pass the token limit."""
        return {"max_tokens": sampling.max_new_tokens}


class OpenAIBackend(ChatBackend):
    """An OpenAI-compatible endpoint through ``ChatOpenAI``."""

    def __init__(self, chat: BaseChatModel, name: str, tokenizer: Any | None) -> None:
        super().__init__(chat, name)
        self.tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        """Count with the configured local tokenizer, else approximate."""
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text, add_special_tokens=False))
        return approx_tokens(text)

    async def invoke(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        """Make one attempt; a broken completion body is a transient error."""
        try:
            return await super().invoke(messages, kwargs)
        except (IndexError, KeyError, TypeError, json.JSONDecodeError) as exc:
            # langchain-openai fails this way on empty choices or a broken body:
            # the server's fault, worth a retry like a 5xx.
            raise BadResponseError(f"malformed completion: {type(exc).__name__}: {exc}") from exc

    async def label_logprobs(
        self, query: LabelQuery, policy: CallPolicy | None = None
    ) -> list[float] | None:
        """Score labels from the endpoint's logprobs at the answer (``first_token_scores``).

        One greedy request for a few tokens with ``logprobs`` and the top 20
        alternatives per token, retried like any call on transient errors;
        None (free mode) when the server refuses logprobs or returns none.
        """
        kwargs: dict[str, Any] = {"temperature": 0.0, "max_tokens": 16, "logprobs": True}
        kwargs["top_logprobs"] = TOP_LOGPROBS
        reply = await self.optional_call(query.messages, kwargs, policy or CallPolicy())
        if reply is None:
            return None  # a server that refuses logprobs: free mode
        logprobs = (reply.response_metadata or {}).get("logprobs")
        if not isinstance(logprobs, dict):
            return None  # the server ignores logprobs
        content = logprobs.get("content") or []
        scores = first_token_scores(content, query.prefix, query.continuations)
        # An empty or broken reply from a server that does give logprobs: no information
        # about the labels, so every label is equally likely (never a free-text answer).
        return scores if scores is not None else [0.0] * len(query.continuations)

    async def constrained_choice(
        self, messages: list[BaseMessage], labels: Sequence[str], policy: CallPolicy | None = None
    ) -> str | None:
        """Ask for one label under constrained decoding (structured output with an enum).

        ``response_format`` with a JSON schema ``{"answer": <one of labels>}``, which
        OpenAI, vLLM, llama.cpp server and Ollama enforce while decoding. None when
        the server refuses it or its reply is not such an object (free mode then).
        """
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": list(labels)}},
            "required": ["answer"],
            "additionalProperties": False,
        }
        kwargs: dict[str, Any] = {
            "temperature": 0.0,
            "max_tokens": 64,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": True, "schema": schema},
            },
        }
        reply = await self.optional_call(messages, kwargs, policy or CallPolicy())
        try:
            answer = json.loads(message_text(reply))["answer"] if reply is not None else None
        except (ValueError, TypeError, KeyError):
            return None
        return answer if answer in labels else None

    async def optional_call(
        self, messages: list[BaseMessage], kwargs: dict[str, Any], policy: CallPolicy
    ) -> AIMessage | None:
        """Make a call that uses an optional server feature; None when the server refuses it.

        Transient errors are retried as for any call (and raise when retries run out).
        """
        reply, _ = await self.attempts(messages, kwargs, policy, refusable=True)
        return reply

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Pass sampling as request parameters."""
        kwargs: dict[str, Any] = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        }
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs
