"""The one retry layer: tenacity around a model call, for transient errors only.

Transient: timeouts, connection errors, 429, 5xx and malformed completions.
Exponential backoff with jitter that honours Retry-After, bounded in attempts
and in seconds. ``ChatOpenAI``'s own retries are off, so nothing retries twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from llm_as_rnn.errors import EndpointError, LlmAsRnnError, describe
from llm_as_rnn.runtime.spec import CallPolicy

T = TypeVar("T")


class BadResponseError(RuntimeError):
    """An endpoint answered with something that is not a chat completion."""


def is_transient(exc: BaseException) -> bool:
    """Return whether an error is worth retrying (timeouts, 429, 5xx, resets)."""
    import httpx
    import openai

    if isinstance(exc, BadResponseError):
        return True
    if isinstance(
        exc,
        openai.APIConnectionError  # includes APITimeoutError
        | openai.RateLimitError
        | openai.InternalServerError
        | openai.APIResponseValidationError,
    ):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 425, 429) or exc.status_code >= 500
    return isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError)


def retry_after_seconds(exc: BaseException | None) -> float:
    """Return the server's Retry-After delay in seconds carried by an error, or 0."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return 0.0
    try:
        return max(0.0, float(headers.get("retry-after", 0)))
    except (TypeError, ValueError):
        return 0.0


class Backoff:
    """Exponential backoff with jitter that honours Retry-After, capped."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self._jitter = wait_random_exponential(multiplier=0.25, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        """Return the seconds to wait before the next attempt."""
        exc = state.outcome.exception() if state.outcome else None
        return min(self.cap, max(self._jitter(state), retry_after_seconds(exc)))


async def retry(
    attempt: Callable[[], Awaitable[T]],
    failure: BaseException,
    policy: CallPolicy,
    elapsed: float,
    name: str,
) -> tuple[T, int]:
    """Retry a call whose first attempt failed with ``failure``: (result, attempts).

    When the attempts run out, an ``EndpointError`` names the model (``name``),
    the last error and the attempts made.

    Tenacity's first attempt re-raises that failure, so its backoff, attempt
    and time bounds count the attempt already made. (Most calls succeed at
    once: tenacity's bookkeeping, tens of microseconds, starts at a failure.)
    """
    attempts = 0
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(policy.max_attempts)
        | stop_after_delay(max(0.0, policy.max_retry_s - elapsed)),
        wait=Backoff(cap=min(30.0, policy.max_retry_s)),
        reraise=True,
    )
    try:
        async for trial in retrying:
            with trial:
                attempts += 1
                if attempts == 1:
                    raise failure
                result = await attempt()
    except LlmAsRnnError:
        raise
    except Exception as exc:
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        raise EndpointError(f"{name}: {describe(exc)} after {tries}") from exc
    return result, attempts
