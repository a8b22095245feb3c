"""Choice mode: a classification answer as a probability distribution over the labels.

The predictor is not asked to write; each label is scored as the reply's
continuation after the answer prefix (``Answer:``), and the scores become a
distribution (softmax over the labels of their summed token log-probabilities:
the probability of each whole label string, renormalised over the label set).
The answer is its argmax, so a prediction is never invalid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from langchain_core.messages import BaseMessage

from llm_as_rnn.core.state import Prediction
from llm_as_rnn.runtime.backends import ChatBackend, LabelQuery, warn_once
from llm_as_rnn.runtime.spec import CallPolicy
from llm_as_rnn.runtime.usage import Generation

PREFIX = "Answer:"
"""What the reply starts with before the label (as the predictor's prompt asks)."""


def distribution(labels: Sequence[str], logprobs: Sequence[float]) -> dict[str, float]:
    """Return the softmax of label log-probabilities (rounded to 6 decimals)."""
    top = max(logprobs)
    weights = [math.exp(x - top) for x in logprobs]
    total = sum(weights)
    return {label: round(w / total, 6) for label, w in zip(labels, weights, strict=True)}


def argmax(dist: Mapping[str, float]) -> str:
    """Return the most probable label (the first listed on a tie)."""
    return max(dist, key=lambda label: dist[label])


def truth_logprob(dist: Mapping[str, float], truth: str) -> float:
    """Return log p(truth) under a distribution (floored at 1e-12)."""
    return math.log(max(dist.get(truth, 0.0), 1e-12))


async def score_labels(
    backend: ChatBackend,
    messages: list[BaseMessage],
    labels: Sequence[str],
    policy: CallPolicy | None = None,
) -> dict[str, float] | None:
    """Return the predictor's distribution over ``labels``, or None if it cannot score."""
    continuations = [f" {label}" for label in labels]
    scores = await backend.label_logprobs(LabelQuery(messages, PREFIX, continuations), policy)
    return None if scores is None else distribution(labels, scores)


def warn_free(backend: ChatBackend) -> None:
    """Say once per backend that it cannot score labels, so answers are free text."""
    warn_once(
        f"{backend.name}:labels",
        f"warning: {backend.name} cannot score labels (no log-probabilities, no constrained "
        "decoding): answering in free mode",
    )


async def choose(
    backend: ChatBackend,
    labels: Sequence[str],
    messages: list[BaseMessage],
    h0_messages: list[BaseMessage] | None,
    policy: CallPolicy | None = None,
) -> tuple[Prediction, list[Generation]] | None:
    """Predict by scoring every label; None when the backend cannot score.

    ``h0_messages`` (the same prompt with the initial memory) are scored too,
    for the memory's lift; None when the memory is still h_0.
    """
    started = time.perf_counter()
    dist = await score_labels(backend, messages, labels, policy)
    if dist is None:
        return await constrained(backend, messages, labels, policy, started)
    calls = [scoring_call(backend, messages, started)]
    dist0 = dist
    if h0_messages is not None:
        started = time.perf_counter()
        scored = await score_labels(backend, h0_messages, labels, policy)
        dist0 = scored if scored is not None else dist
        calls.append(scoring_call(backend, h0_messages, started))
    answer = argmax(dist)
    prediction = Prediction(
        text=f"{PREFIX} {answer}",
        answer=answer,
        valid=True,
        distribution=dist,
        distribution_h0=dist0,
    )
    return prediction, calls


async def constrained(
    backend: ChatBackend,
    messages: list[BaseMessage],
    labels: Sequence[str],
    policy: CallPolicy | None,
    started: float,
) -> tuple[Prediction, list[Generation]] | None:
    """Predict one label by constrained decoding (no distribution); None if unavailable."""
    ask = getattr(backend, "constrained_choice", None)
    answer = await ask(messages, labels, policy) if ask is not None else None
    if answer is None:
        warn_free(backend)
        return None
    prediction = Prediction(text=f"{PREFIX} {answer}", answer=answer, valid=True)
    return prediction, [scoring_call(backend, messages, started)]


def scoring_call(backend: ChatBackend, messages: list[BaseMessage], started: float) -> Generation:
    """Return the cost of one scoring pass (prompt tokens, no generated ones)."""
    return Generation(
        text="",
        prompt_tokens=backend.prompt_tokens(messages),
        completion_tokens=0,
        latency_s=round(time.perf_counter() - started, 6),
        retries=0,
    )
