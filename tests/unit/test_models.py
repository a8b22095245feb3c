"""Backend routing and the single retry layer (no network)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage

from llm_as_rnn import Context
from llm_as_rnn.errors import ConfigError, EndpointError
from llm_as_rnn.runtime.backends import ChatBackend, approx_tokens
from llm_as_rnn.runtime.resolve import Resolver, build_backend
from llm_as_rnn.runtime.retry import is_transient, retry_after_seconds
from llm_as_rnn.runtime.spec import CallPolicy, Endpoint, ModelSpec, parse_spec
from llm_as_rnn.testing import FunctionChatModel


def test_parse_spec() -> None:
    assert parse_spec("embedded").kind == "embedded"
    spec = parse_spec("hf:/models/llama#q4.gguf")
    assert (spec.kind, spec.name, spec.gguf_file) == ("hf", "/models/llama", "q4.gguf")
    assert parse_spec("openai:gpt-4o-mini").name == "gpt-4o-mini"
    assert parse_spec("fake:3").name == "3"
    for bad in ("", "gpt4", "hf:", "openai:", "fake:x"):
        with pytest.raises(ConfigError):
            parse_spec(bad)


def test_openai_without_key_or_url_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_backend(parse_spec("openai:x"), Endpoint())


def _status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return openai.APIStatusError("boom", response=response, body=None)


def test_is_transient() -> None:
    request = httpx.Request("POST", "http://127.0.0.1")
    assert is_transient(openai.APIConnectionError(request=request))
    assert is_transient(_status_error(503))
    assert is_transient(_status_error(429))
    assert not is_transient(_status_error(400))
    assert not is_transient(_status_error(401))
    assert is_transient(httpx.ConnectError("refused"))
    assert not is_transient(ValueError("bad"))


def test_retry_after() -> None:
    assert retry_after_seconds(_status_error(429, {"retry-after": "2"})) == 2.0
    assert retry_after_seconds(ValueError()) == 0.0


class Flaky:
    """Fails with a transient error ``failures`` times, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, messages: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "Answer: rain"


async def test_transient_errors_are_retried_and_counted() -> None:
    flaky = Flaky(2, httpx.ConnectError("reset"))
    backend = ChatBackend(FunctionChatModel(respond=flaky), "flaky")
    gen = await backend.generate(
        [HumanMessage("hi")], Context().sampling["predictor"], CallPolicy()
    )
    assert gen.text == "Answer: rain"
    assert gen.retries == 2
    assert flaky.calls == 3


async def test_retries_are_bounded() -> None:
    flaky = Flaky(100, httpx.ConnectError("down"))
    backend = ChatBackend(FunctionChatModel(respond=flaky), "down")
    ctx = Context(max_attempts=3)
    start = time.monotonic()
    with pytest.raises(EndpointError, match=r"^down: ConnectError: down after 3 attempts$"):
        await backend.generate([HumanMessage("hi")], ctx.sampling["predictor"], ctx.call_policy())
    assert flaky.calls == 3
    assert time.monotonic() - start < 10


async def test_one_attempt_means_no_retry() -> None:
    flaky = Flaky(1, httpx.ConnectError("reset"))
    backend = ChatBackend(FunctionChatModel(respond=flaky), "flaky")
    ctx = Context(max_attempts=1)
    with pytest.raises(EndpointError, match=r"^flaky: ConnectError: reset after 1 attempt$"):
        await backend.generate([HumanMessage("hi")], ctx.sampling["predictor"], ctx.call_policy())
    assert flaky.calls == 1


async def test_permanent_errors_are_not_retried() -> None:
    flaky = Flaky(100, ValueError("bad request"))
    backend = ChatBackend(FunctionChatModel(respond=flaky), "bad")
    with pytest.raises(EndpointError, match=r"^bad: ValueError: bad request \(not retried\)$"):
        await backend.generate([HumanMessage("hi")], Context().sampling["predictor"], CallPolicy())
    assert flaky.calls == 1


async def test_fake_latency_includes_computing_the_reply() -> None:
    def slow(messages: Any) -> str:
        time.sleep(0.1)
        return "Answer: rain"

    model = FunctionChatModel(respond=slow, latency_s=0.15)
    start = time.perf_counter()
    await model.ainvoke([HumanMessage("hi")])
    elapsed = time.perf_counter() - start
    assert 0.15 <= elapsed < 0.22  # not 0.1 of reply + 0.15 of latency


async def test_a_loaded_local_model_resolves_without_the_torch_thread() -> None:
    hops: list[ModelSpec] = []
    backend = ChatBackend(FunctionChatModel(respond=lambda m: "x"), "local")

    async def on_thread(fn: Any, *args: Any) -> Any:
        hops.append(args[0])
        return fn(*args)

    resolve = Resolver(build=lambda spec, endpoint: backend, on_thread=on_thread)
    spec = parse_spec("hf:/models/x")
    first = await resolve(spec, Endpoint())
    again = await resolve(parse_spec("hf:/models/x"), Endpoint())
    assert first is again is backend
    assert hops == [spec]  # loaded once, on the torch thread


def test_approx_tokens_is_conservative() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("abcdef") == 2


def test_context_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="budget"):
        Context(budget=0)
    with pytest.raises(ValueError, match="feedback"):
        Context(feedback="sometimes")  # type: ignore[arg-type]
    partial = Context(sampling={"critic": {"temperature": 0.1}})  # type: ignore[dict-item]
    assert partial.sampling["critic"].temperature == 0.1
    assert partial.sampling["critic"].max_new_tokens == 128
    assert partial.sampling["predictor"].temperature == 0.7


async def test_local_calls_are_bounded_by_tokens_not_by_waiting() -> None:
    """Queueing behind another generation on the torch thread never times a local call out."""
    import asyncio

    from llm_as_rnn.runtime.local import LocalHFBackend, on_torch_thread

    class Tokenizer:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
            return text.split()

        def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
            return " ".join(m["content"] for m in messages)

    def slow(messages: Any) -> str:
        time.sleep(0.3)
        return "Answer: rain"

    backend = LocalHFBackend(FunctionChatModel(respond=slow), "local", Tokenizer())
    policy = CallPolicy(timeout_s=0.05, max_attempts=1)  # far below the time it takes
    busy = asyncio.ensure_future(on_torch_thread(time.sleep, 0.5))  # another sequence's turn
    gen = await backend.generate([HumanMessage("hi")], Context().sampling["predictor"], policy)
    await busy
    assert gen.text == "Answer: rain"
    assert gen.retries == 0
