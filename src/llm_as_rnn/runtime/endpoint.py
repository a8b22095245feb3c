"""An OpenAI-compatible endpoint (``OpenAIBackend``): sampling, label scores, structured outputs.

Optional server features are asked for and dropped when refused: token
logprobs (choice mode's label scores, ``first_token_scores``) and structured
outputs (``response_format`` with a JSON schema: choice mode's constrained
label, and every structured answer of ``runtime.structure`` through
``runtime.schema``). Only an error that says so is a refusal
(``backends.refuses``); any other is raised or retried as for every call. A
refusal holds for the schema refused, by its name: a server that refuses the
delta operations' schema still gets the judge's and choice mode's. A refused
schema is not asked again in this process, and each cause of refusals costs
one warning line (``refusal_warning``); those answers are free text, read by
the same parsers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from llm_as_rnn.runtime.backends import (
    ChatBackend,
    LabelQuery,
    RefusedError,
    Structuring,
    approx_tokens,
    message_text,
    warn_once,
)
from llm_as_rnn.runtime.retry import BadResponseError
from llm_as_rnn.runtime.schema import json_schema, name_of, text_of
from llm_as_rnn.runtime.spec import CallPolicy, Sampling
from llm_as_rnn.runtime.structure import Judgement, Structure
from llm_as_rnn.runtime.usage import Generation

TOP_LOGPROBS = 20
"""Alternatives per position asked of an endpoint (OpenAI's maximum)."""
STRUCTURED_OUTPUTS = ("response_format", "json_schema", "structured output")
"""What servers call structured outputs in their errors (a refusal names one)."""
LOGPROBS = ("logprobs",)
"""What servers call token log-probabilities in their errors."""
CHOICE_SCHEMA = "answer"
"""The schema name of choice mode's constrained label (``constrained_choice``)."""


def refusal_warning(name: str, structure: Structure, schema: str, reason: str) -> tuple[str, str]:
    """Return the warning key and line for a server ``name`` refusing a structure's schema.

    One line per cause: the key is the server's reason, so every schema refused
    for the same reason costs one line. The line says what the reason is about:
    a reason quoting the schema's name refused that schema; another one,
    structured outputs themselves.
    """
    what = "judge answers" if isinstance(structure, Judgement) else "memory updates"
    key = f"{name}:refused:{reason}"
    if f"'{schema}'" in reason or f'"{schema}"' in reason:
        return key, (
            f"warning: {name} refuses the JSON schema of its {what} ({schema}): they are "
            "free text, read by the parser"
        )
    return key, (
        f"warning: {name} refuses structured outputs (response_format): memory updates "
        "and judge answers are free text, read by the parsers"
    )


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


class OpenAIBackend(ChatBackend):
    """An OpenAI-compatible endpoint through ``ChatOpenAI``."""

    def __init__(self, chat: BaseChatModel, name: str, tokenizer: Any | None) -> None:
        super().__init__(chat, name)
        self.tokenizer = tokenizer
        self.refused: dict[str, str] = {}
        """The schemas the server refused (not asked again), by name, with its reason."""
        self.ignored = False
        """True once the server answered a structured call without its schema."""

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
        reply = await self.optional_call(query.messages, kwargs, policy or CallPolicy(), LOGPROBS)
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
        the server refuses it or its reply is not such an object (free mode then, and
        choice mode's own warning line).
        """
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": list(labels)}},
            "required": ["answer"],
            "additionalProperties": False,
        }
        kwargs: dict[str, Any] = {"temperature": 0.0, "max_tokens": 64}
        try:
            reply, _ = await self.json_call(
                messages, kwargs, CHOICE_SCHEMA, schema, policy or CallPolicy()
            )
        except RefusedError:
            return None  # free mode: its one warning line says why (``core.choice``)
        try:
            answer = json.loads(message_text(reply))["answer"]
        except (ValueError, TypeError, KeyError):
            return None
        return answer if answer in labels else None

    async def json_call(
        self,
        messages: list[BaseMessage],
        kwargs: dict[str, Any],
        name: str,
        schema: dict[str, Any],
        policy: CallPolicy,
    ) -> tuple[AIMessage, int]:
        """Make a call answering under the JSON schema ``name`` (structured outputs, ``strict``).

        Returns the reply and its attempts. Raises ``RefusedError`` when the
        server refuses this schema, now or before (it is not asked again).
        """
        if name in self.refused:
            raise RefusedError(self.refused[name])
        shape = {"name": name, "strict": True, "schema": schema}
        # Sent as a plain body field: given as ``response_format``, ChatOpenAI takes the
        # SDK's ``parse`` path, which walks the whole schema with its typed transform on
        # every call (a third of the call's CPU, on the event loop all sequences share)
        # and parses the answer, which ``text_of`` does here anyway.
        body = {"response_format": {"type": "json_schema", "json_schema": shape}}
        kwargs = {**kwargs, "extra_body": body}
        try:
            return await self.attempts(messages, kwargs, policy, STRUCTURED_OUTPUTS)
        except RefusedError as exc:
            self.refused[name] = str(exc)
            raise

    async def generate(
        self,
        messages: list[BaseMessage],
        sampling: Sampling,
        policy: CallPolicy,
        structure: Structure | None = None,
    ) -> Generation:
        """Call the model; a structured call answers JSON under the structure's schema.

        The JSON answer comes back in its text form (``runtime.schema.text_of``).
        A server that refuses the schema is asked again for free text, with one
        warning line per cause (``refusal_warning``); one that ignores it (an
        answer that is not such JSON, not cut off) is read as free text, with
        one warning line.
        """
        if structure is None:
            return await super().generate(messages, sampling, policy)
        start = time.perf_counter()
        kwargs = self.call_kwargs(sampling, policy.seed)
        name = name_of(structure)
        try:
            reply, attempts = await self.json_call(
                messages, kwargs, name, json_schema(structure), policy
            )
        except RefusedError as exc:
            warn_once(*refusal_warning(self.name, structure, name, str(exc)))
            return await super().generate(messages, sampling, policy)
        generation = self.generation(reply, attempts, messages, sampling, start)
        text = text_of(structure, generation.text)
        if text is not None:
            return dataclasses.replace(generation, text=text)
        if not generation.cut_off:  # a cut answer is rejected as cut off, whatever its form
            self.ignored = True
            warn_once(
                f"{self.name}:ignored",
                f"warning: {self.name} answered without its JSON schema (response_format): "
                "such answers are read as free text",
            )
        return generation

    async def optional_call(
        self,
        messages: list[BaseMessage],
        kwargs: dict[str, Any],
        policy: CallPolicy,
        feature: Sequence[str],
    ) -> AIMessage | None:
        """Make a call that uses the optional server ``feature``; None when the server refuses it.

        Transient errors are retried as for any call (and raise when retries
        run out); other errors raise unless they say the server refuses
        ``feature`` (``backends.refuses``).
        """
        try:
            reply, _ = await self.attempts(messages, kwargs, policy, feature)
        except RefusedError:
            return None
        return reply

    def structuring(self) -> Structuring:
        """Say how memory updates have been structured: JSON schema, or why free text."""
        if set(self.refused) - {CHOICE_SCHEMA}:
            return "refused -> free text"
        return "ignored (server answers free text)" if self.ignored else "JSON schema"

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


class ChatOpenAIInstance(OpenAIBackend):
    """A caller's ``ChatOpenAI`` instance: its own sampling, and structured outputs asked.

    Like any chat model instance it samples as it was built (no sampling of the
    run's is passed); as an OpenAI-compatible endpoint it takes
    ``response_format``, logprobs and constrained choices.
    """

    def __init__(self, chat: BaseChatModel, name: str) -> None:
        super().__init__(chat, name, None)

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Pass nothing: the instance samples as it was built."""
        return {}
